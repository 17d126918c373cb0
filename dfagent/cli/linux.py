"""`dfagent linux …`: the Linux router datapath (kernel mode, map mode) and its cleanup.

All commands act on the network namespace they run in (use ``ip netns exec NS dfagent …``).
"""

from __future__ import annotations

import json
import logging
import signal
import sys
from types import FrameType
from typing import TYPE_CHECKING

import click

from dfagent.backends.linux.state import DEFAULT_STATE_DIR

if TYPE_CHECKING:
    from dfagent.backends.linux.datapath import LinuxDatapath
    from dfagent.core.nexthops import IPNetwork

STATE_DIR_OPT = click.option(
    "--state-dir",
    default=DEFAULT_STATE_DIR,
    show_default=True,
    help="Where mark allocations are kept across restarts.",
)


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        stream=sys.stderr,
        format="ts=%(asctime)s level=%(levelname)s component=%(name)s event=%(message)s",
    )


def _parse_vips(vips: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    from dfagent.core.nexthops import parse_vip

    try:
        return tuple(parse_vip(v) for v in vips)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--vip") from exc


def _run_until_signal(dp: LinuxDatapath) -> None:
    def _stop(signum: int, frame: FrameType | None) -> None:
        dp.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        dp.run()
    finally:
        dp.close()


@click.group()
def linux() -> None:
    """Linux router datapath: kernel-mode pinning, map mode, status and cleanup."""


@linux.command()
@click.option("--vip", "vips", multiple=True, required=True, help="VIP prefix (repeatable).")
@STATE_DIR_OPT
@click.option("--reconcile-interval", default=5.0, show_default=True, type=float)
@click.option(
    "--gc-grace",
    default=5.0,
    show_default=True,
    type=float,
    help="Seconds a gone next hop with no pinned flow is kept before its table is removed.",
)
@click.option(
    "--dead-hold",
    default=30.0,
    show_default=True,
    type=float,
    help="Seconds a dead (released) next hop is remembered while entries still carry its mark.",
)
@click.option("-v", "--verbose", is_flag=True)
def kernel(
    vips: tuple[str, ...],
    state_dir: str,
    reconcile_interval: float,
    gc_grace: float,
    dead_hold: float,
    verbose: bool,
) -> None:
    """Pin connections to VIPs with conntrack marks (runs until SIGTERM/SIGINT).

    On exit the pins stay in place: the kernel keeps pinning while the agent is down.
    Remove everything with `dfagent linux cleanup`.
    """
    from dfagent.backends.linux.datapath import DatapathConfig, LinuxDatapath

    _setup_logging(verbose)
    cfg = DatapathConfig(
        _parse_vips(vips),
        state_dir=state_dir,
        reconcile_interval=reconcile_interval,
        gc_grace=gc_grace,
        dead_hold=dead_hold,
    )
    dp = LinuxDatapath(cfg)
    dp.start()
    _run_until_signal(dp)


@linux.command("map")
@click.option("--vip", "vips", multiple=True, required=True, help="VIP prefix (repeatable).")
@click.option(
    "--nexthop-map",
    "nexthop_map",
    multiple=True,
    help="SESSION=NEXTHOP: ERSPAN session id → egress next hop (repeatable).",
)
@STATE_DIR_OPT
@click.option("--reconcile-interval", default=5.0, show_default=True, type=float)
@click.option("--gc-grace", default=5.0, show_default=True, type=float)
@click.option("--size", "map_size", default=2_000_000, show_default=True, type=int)
@click.option("--timeout", "pin_timeout", default=300, show_default=True, type=int)
@click.option("-v", "--verbose", is_flag=True)
def map_cmd(
    vips: tuple[str, ...],
    nexthop_map: tuple[str, ...],
    state_dir: str,
    reconcile_interval: float,
    gc_grace: float,
    map_size: int,
    pin_timeout: int,
    verbose: bool,
) -> None:
    """Map mode: per-flow pins (5-tuple → mark) in nft maps, fed through the Python API.

    This runner keeps the per-next-hop marks, rules and tables in step with the routing
    table; pins come from `dfagent.backends.linux.mapmode.MapPinner` (the mirror receiver).
    """
    from dfagent.backends.linux.datapath import DatapathConfig, LinuxDatapath

    _setup_logging(verbose)
    sessions: dict[int, str] = {}
    for item in nexthop_map:
        sid, _, nh = item.partition("=")
        if not sid.isdigit() or not nh:
            raise click.BadParameter(f"{item!r}: want SESSION=NEXTHOP", param_hint="--nexthop-map")
        sessions[int(sid)] = nh
    cfg = DatapathConfig(
        _parse_vips(vips),
        state_dir=state_dir,
        reconcile_interval=reconcile_interval,
        gc_grace=gc_grace,
        record=False,
        pin_maps=True,
        pin_map_size=map_size,
        pin_timeout=pin_timeout,
    )
    dp = LinuxDatapath(cfg)
    dp.start()
    logging.getLogger("dfagent.linux").info(
        "map-mode sessions=%s", json.dumps({str(k): v for k, v in sessions.items()})
    )
    _run_until_signal(dp)


@linux.command()
@STATE_DIR_OPT
@click.option("--json", "as_json", is_flag=True)
@click.option("--no-count", is_flag=True, help="Skip the conntrack dump.")
def status(state_dir: str, as_json: bool, no_count: bool) -> None:
    """Next hops, marks, tables, rules and pinned-flow counts."""
    from dfagent.backends.linux.datapath import format_status
    from dfagent.backends.linux.datapath import status as get_status

    data = get_status(state_dir, count=not no_count)
    click.echo(json.dumps(data, indent=1) if as_json else format_status(data))


@linux.command()
@STATE_DIR_OPT
@click.option("--keep-state", is_flag=True, help="Keep the mark allocations file.")
@click.option("--json", "as_json", is_flag=True)
def cleanup(state_dir: str, keep_state: bool, as_json: bool) -> None:
    """Remove every nft table, ip rule and route dfagent created, and only those."""
    from dfagent.backends.linux.datapath import cleanup as do_cleanup

    removed = do_cleanup(state_dir, keep_state=keep_state)
    if as_json:
        click.echo(json.dumps(removed))
    else:
        click.echo(" ".join(f"{k}={v}" for k, v in removed.items()))
