"""`dfagent linux …`: the Linux router datapath (kernel mode, map mode) and its cleanup.

All commands act on the network namespace they run in (use ``ip netns exec NS dfagent …``).
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import time
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING

import click

from dfagent.backends.linux.state import DEFAULT_STATE_DIR

if TYPE_CHECKING:
    from dfagent.backends.linux.datapath import LinuxDatapath
    from dfagent.core.nexthops import IPNetwork

STATE_DIR_OPT = click.option(
    "--state-dir",
    default=None,
    help=f"Where mark allocations are kept across restarts [default: {DEFAULT_STATE_DIR}, "
    f"or {DEFAULT_STATE_DIR}/netns/NAME inside `ip netns exec NAME`].",
)


def one_direction_options(f: Callable[..., None]) -> Callable[..., None]:
    """--one-direction, --notrack, --fin-timeout (kernel and map mode alike)."""
    f = click.option(
        "--fin-timeout",
        default=30,
        show_default=True,
        type=int,
        help="With --one-direction: seconds a pin lives after the client's FIN or RST.",
    )(f)
    f = click.option(
        "--notrack",
        is_flag=True,
        help="With --one-direction: no conntrack at all for VIP traffic (raw priority).",
    )(f)
    f = click.option(
        "--one-direction",
        is_flag=True,
        help="The router sees only client → server packets (direct server return, a return "
        "path that bypasses it): pin in per-flow nft maps looked up on every packet, "
        "refreshed by traffic, instead of conntrack (which marks every packet after the SYN "
        "INVALID there).",
    )(f)
    return f


def _check_one_direction(one_direction: bool, notrack: bool) -> None:
    if notrack and not one_direction:
        raise click.UsageError("--notrack needs --one-direction (pins live in conntrack)")


def _state_dir(given: str | None) -> str:
    from dfagent.backends.linux.state import default_state_dir

    return given or default_state_dir()


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
@one_direction_options
@click.option("-v", "--verbose", is_flag=True)
def kernel(
    vips: tuple[str, ...],
    state_dir: str | None,
    reconcile_interval: float,
    gc_grace: float,
    dead_hold: float,
    one_direction: bool,
    notrack: bool,
    fin_timeout: int,
    verbose: bool,
) -> None:
    """Pin connections to VIPs with conntrack marks (runs until SIGTERM/SIGINT).

    On exit the pins stay in place: the kernel keeps pinning while the agent is down.
    Remove everything with `dfagent linux cleanup`.
    """
    from dfagent.backends.linux.datapath import DatapathConfig, LinuxDatapath

    _check_one_direction(one_direction, notrack)
    _setup_logging(verbose)
    cfg = DatapathConfig(
        _parse_vips(vips),
        state_dir=_state_dir(state_dir),
        reconcile_interval=reconcile_interval,
        gc_grace=gc_grace,
        dead_hold=dead_hold,
        one_direction=one_direction,
        notrack=notrack,
        fin_timeout=fin_timeout,
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
    help="SESSION=NEXTHOP: ERSPAN session id (or GRE key) → egress next hop (repeatable). "
    "With none, no mirror is received (pins come only through the Python API).",
)
@click.option(
    "--mirror-source",
    "mirror_sources",
    multiple=True,
    help="Accept mirrored packets only from this address (repeatable; default: any).",
)
@STATE_DIR_OPT
@click.option("--reconcile-interval", default=5.0, show_default=True, type=float)
@click.option("--gc-grace", default=5.0, show_default=True, type=float)
@click.option("--size", "map_size", default=2_000_000, show_default=True, type=int)
@click.option("--timeout", "pin_timeout", default=300, show_default=True, type=int)
@click.option("--max-items", default=256, show_default=True, type=int, help="Micro-batch size.")
@click.option(
    "--max-delay-ms", default=2.0, show_default=True, type=float, help="Micro-batch max wait."
)
@one_direction_options
@click.option("-v", "--verbose", is_flag=True)
def map_cmd(
    vips: tuple[str, ...],
    nexthop_map: tuple[str, ...],
    mirror_sources: tuple[str, ...],
    state_dir: str | None,
    reconcile_interval: float,
    gc_grace: float,
    map_size: int,
    pin_timeout: int,
    max_items: int,
    max_delay_ms: float,
    one_direction: bool,
    notrack: bool,
    fin_timeout: int,
    verbose: bool,
) -> None:
    """Map mode: per-flow pins (5-tuple → mark) in nft maps, from mirrored SYNs.

    Keeps the per-next-hop marks, rules and tables in step with the routing table (like
    `kernel`, without the postrouting record rule) and, with --nexthop-map, receives mirrored
    SYNs (GRE/ERSPAN) and pins each flow to the next hop its mirror session says carried it.
    """
    import threading

    from dfagent.backends.linux.datapath import DatapathConfig, LinuxDatapath
    from dfagent.backends.linux.mapmode import MapPinner, MicroBatcher, PinItem
    from dfagent.core.egress import EgressResolver, parse_session_map

    _check_one_direction(one_direction, notrack)
    _setup_logging(verbose)
    log = logging.getLogger("dfagent.linux")
    try:
        sessions = parse_session_map(nexthop_map)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--nexthop-map") from exc
    cfg = DatapathConfig(
        _parse_vips(vips),
        state_dir=_state_dir(state_dir),
        reconcile_interval=reconcile_interval,
        gc_grace=gc_grace,
        record=False,
        pin_maps=True,
        pin_map_size=map_size,
        pin_timeout=pin_timeout,
        one_direction=one_direction,
        notrack=notrack,
        fin_timeout=fin_timeout,
    )
    dp = LinuxDatapath(cfg)
    dp.start()
    if not sessions:
        log.info("map-mode receiver=off (pins through the MapPinner API only)")
        _run_until_signal(dp)
        return

    from dfagent.mirror.receiver import MirrorReceiver

    stop = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()
        dp.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    receiver = MirrorReceiver(list(mirror_sources) or None)
    receiver.open()
    threads = [
        threading.Thread(target=dp.run, name="datapath", daemon=True),
        threading.Thread(target=receiver.run, args=(stop,), name="mirror", daemon=True),
    ]
    for t in threads:
        t.start()
    pinner = MapPinner(dp.nft, dp.resolve_mark, timeout=pin_timeout, one_direction=one_direction)
    batcher = MicroBatcher(pinner, max_items=max_items, max_delay=max_delay_ms / 1000)
    egress = EgressResolver(sessions)
    log.info(
        "map-mode receiver=on sessions=%s sources=%s",
        json.dumps({str(k): v for k, v in sessions.items()}),
        ",".join(mirror_sources) or "any",
    )
    next_report = time.monotonic() + 10
    try:
        while not stop.is_set():
            events = receiver.poll_batch(max_items, timeout=max_delay_ms / 1000)
            now = time.monotonic()
            for item in egress.pin_items(events):
                batcher.add(PinItem(*item), now)
            batcher.poll(time.monotonic())
            if now >= next_report:
                next_report = now + 10
                st = pinner.stats
                log.info(
                    "map-pins pinned=%d live=%d unknown_session=%d unknown_nexthop=%d "
                    "replaced=%d failed=%d batches=%d mirror=%s",
                    st.pinned,
                    pinner.count(),
                    egress.unknown,
                    st.unknown_nexthop,
                    st.replaced,
                    st.failed,
                    st.batches,
                    json.dumps(receiver.counters, sort_keys=True),
                )
        batcher.flush()
    finally:
        stop.set()
        dp.stop()
        for t in threads:
            t.join(5)
        receiver.close()
        dp.close()


@linux.command()
@STATE_DIR_OPT
@click.option("--json", "as_json", is_flag=True)
@click.option("--no-count", is_flag=True, help="Skip the conntrack dump.")
def status(state_dir: str | None, as_json: bool, no_count: bool) -> None:
    """Next hops, marks, tables, rules and pinned-flow counts."""
    from dfagent.backends.linux.datapath import format_status
    from dfagent.backends.linux.datapath import status as get_status

    data = get_status(_state_dir(state_dir), count=not no_count)
    click.echo(json.dumps(data, indent=1) if as_json else format_status(data))


@linux.command()
@STATE_DIR_OPT
@click.option("--keep-state", is_flag=True, help="Keep the mark allocations file.")
@click.option("--json", "as_json", is_flag=True)
def cleanup(state_dir: str | None, keep_state: bool, as_json: bool) -> None:
    """Remove every nft table, ip rule and route dfagent created, and only those."""
    from dfagent.backends.linux.datapath import cleanup as do_cleanup

    removed = do_cleanup(_state_dir(state_dir), keep_state=keep_state)
    if as_json:
        click.echo(json.dumps(removed))
    else:
        click.echo(" ".join(f"{k}={v}" for k, v in removed.items()))
