"""`dfagent linux …`: the Linux router datapath (kernel mode, map mode) and its cleanup.

All commands act on the network namespace they run in (use ``ip netns exec NS dfagent …``).
Every failure is one ``error: …`` line on stderr and a non-zero exit (1: the router or the
agent refused; 2: bad arguments), never a traceback.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING, Any

import click

# every default is written once, in dfagent.config (the config file shares them)
from dfagent.config import (
    DEFAULT_BATCH_MAX_DELAY_MS,
    DEFAULT_BATCH_MAX_ITEMS,
    DEFAULT_DEAD_HOLD,
    DEFAULT_FIN_TIMEOUT,
    DEFAULT_GC_GRACE,
    DEFAULT_MARK_MASK,
    DEFAULT_PIN_MAP_SIZE,
    DEFAULT_PIN_TIMEOUT,
    DEFAULT_RECONCILE_INTERVAL,
    DEFAULT_STATE_DIR,
)

if TYPE_CHECKING:
    from dfagent.agent.agent import Agent
    from dfagent.backends.linux.datapath import DatapathConfig
    from dfagent.core.nexthops import IPNetwork

STATE_DIR_OPT = click.option(
    "--state-dir",
    default=None,
    help=f"Where mark allocations, the agent's pid file and the nft include file are kept "
    f"[default: {DEFAULT_STATE_DIR}, or {DEFAULT_STATE_DIR}/netns/NAME inside "
    "`ip netns exec NAME`].",
)


def _fail(msg: str, code: int = 1) -> None:
    click.echo(f"error: {msg}", err=True)
    sys.exit(code)


def _need_root(what: str) -> None:
    if os.geteuid() != 0:
        _fail(f"`dfagent linux {what}` needs root (CAP_NET_ADMIN): run it as root or with sudo")


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

    errors, out = [], []
    for v in vips:
        try:
            out.append(parse_vip(v))
        except ValueError as exc:
            errors.append(str(exc))
    for i, a in enumerate(out):
        for b in out[i + 1 :]:
            if a.version == b.version and a.overlaps(b):
                errors.append(f"{a} and {b} overlap: give the covering prefix once")
    if errors:
        raise click.BadParameter("; ".join(errors), param_hint="--vip")
    return tuple(out)


def _parse_mask(text: str) -> int:
    from dfagent.core.marks import parse_mask

    try:
        return parse_mask(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--mark-mask") from exc


def _common(f: Callable[..., Any]) -> Callable[..., Any]:
    """Options kernel and map mode share (applied bottom-up)."""
    opts = [
        click.option("--vip", "vips", multiple=True, required=True,
                     help="VIP prefix to pin connections to (repeatable, v4 or v6)."),
        STATE_DIR_OPT,
        click.option("--reconcile-interval", default=DEFAULT_RECONCILE_INTERVAL,
                     show_default=True, type=float,
                     help="Seconds between full passes (route and nftables changes are acted "
                     "on at once; the pass is the safety net)."),
        click.option("--gc-grace", default=DEFAULT_GC_GRACE, show_default=True, type=float,
                     help="Seconds a gone next hop with no pinned flow is kept before its "
                     "rule and table are removed."),
        click.option("--mark-mask", default=f"0x{DEFAULT_MARK_MASK:08x}", show_default=True,
                     help="dfagent's bits of the packet/conntrack mark (contiguous, at least 2 "
                     "bits; nothing outside them is touched)."),
        click.option("--allow-mark-overlap", is_flag=True,
                     help="Start even if other nft rules or ip rules use dfagent's mark bits."),
        click.option("--nft-include", default=None, metavar="PATH",
                     help="Keep dfagent's table as an nft script here, for the firewall config "
                     "to include after `flush ruleset` [default: STATE_DIR/dfagent.nft]."),
        click.option("--one-direction", is_flag=True,
                     help="The router sees only client → server packets (direct server "
                     "return, a return path that bypasses it): pin in per-flow nft maps looked "
                     "up on every packet and refreshed by traffic, instead of conntrack (which "
                     "calls every packet after the SYN INVALID there)."),
        click.option("--notrack", is_flag=True,
                     help="With --one-direction: no conntrack at all for VIP traffic."),
        click.option("--fin-timeout", default=DEFAULT_FIN_TIMEOUT, show_default=True, type=int,
                     help="With --one-direction: seconds a pin lives after a FIN or RST."),
        click.option("--track-others", is_flag=True,
                     help="Leave traffic that is neither to nor from a VIP in conntrack (by "
                     "default dfagent untracks it, unless other rules here use conntrack)."),
        click.option("--syn-untracked", is_flag=True,
                     help="SYN-flood guard: track VIP connections from the client's first ACK, "
                     "not the SYN, so spoofed SYNs take no conntrack entry (docs/kernel-mode.md, "
                     "'SYN floods')."),
        click.option("--no-repair", is_flag=True,
                     help="Do not watch nftables nor reinstall dfagent's table when a firewall "
                     "reload deletes it (pinning then stops until the agent restarts)."),
        click.option("--metrics", "metrics_address", default=None, metavar="HOST:PORT",
                     help="Serve Prometheus metrics here (GET /metrics), as `dfagent run`'s "
                     "metrics.address does."),
        click.option("-v", "--verbose", is_flag=True, help="Debug logging."),
    ]  # fmt: skip
    for opt in reversed(opts):
        f = opt(f)
    return f


def _config(
    vips: tuple[str, ...],
    state_dir: str | None,
    reconcile_interval: float,
    gc_grace: float,
    mark_mask: str,
    allow_mark_overlap: bool,
    nft_include: str | None,
    no_repair: bool,
    one_direction: bool,
    notrack: bool,
    fin_timeout: int,
    track_others: bool,
    syn_untracked: bool,
    **kw: Any,
) -> DatapathConfig:
    from dfagent.backends.linux.datapath import DatapathConfig
    from dfagent.core.marks import MarkSpace

    sd = _state_dir(state_dir)
    for name, value in (
        ("--reconcile-interval", reconcile_interval),
        ("--gc-grace", gc_grace),
        ("--fin-timeout", fin_timeout),
    ):
        if value <= 0:
            raise click.BadParameter("must be more than 0 seconds", param_hint=name)
    if notrack and not one_direction:
        raise click.UsageError("--notrack needs --one-direction (the pins live in conntrack)")
    if syn_untracked and one_direction:
        raise click.UsageError(
            "--syn-untracked with --one-direction: one-direction pins do not use conntrack"
        )
    return DatapathConfig(
        _parse_vips(vips),
        state_dir=sd,
        reconcile_interval=reconcile_interval,
        gc_grace=gc_grace,
        space=MarkSpace(_parse_mask(mark_mask)),
        allow_mark_overlap=allow_mark_overlap,
        include_file=nft_include or os.path.join(sd, "dfagent.nft"),
        repair=not no_repair,
        one_direction=one_direction,
        notrack=notrack,
        fin_timeout=fin_timeout,
        untrack_others=not track_others,
        syn_untracked=syn_untracked,
        **kw,
    )


@contextmanager
def _running(cfg: DatapathConfig, metrics_address: str | None = None) -> Iterator[Agent]:
    """Lock the state dir, build and start the agent (and its metrics endpoint), close it;
    every failure is one line."""
    from dfagent.agent.linux import build
    from dfagent.agent.metrics import Metrics, MetricsServer, serve_metrics
    from dfagent.backends.linux.datapath import MarkConflict
    from dfagent.backends.linux.nft import NftError
    from dfagent.backends.linux.state import AgentLock, AgentRunning
    from dfagent.core.marks import MarksExhausted

    lock = AgentLock(cfg.state_dir)
    try:
        lock.acquire()
    except (AgentRunning, OSError) as exc:
        _fail(str(exc))
    agent: Agent | None = None
    server: MetricsServer | None = None
    metrics = Metrics(backend="linux", mode=cfg.mode)
    try:
        if metrics_address:  # bound first: a taken port fails before anything is installed
            try:
                server = serve_metrics(metrics, metrics_address)
            except (OSError, ValueError, OverflowError) as exc:
                _fail(f"--metrics {metrics_address}: {exc}")
        try:
            agent = build(cfg, metrics)
        except (MarkConflict, NftError, MarksExhausted, OSError) as exc:
            _fail(str(exc))
        assert agent is not None
        yield agent
    finally:
        if server is not None:
            server.close()
        if agent is not None:
            agent.close()
        lock.release()


def _on_signals(stop: Callable[[], None]) -> None:
    def _stop(signum: int, frame: FrameType | None) -> None:
        stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)


@click.group()
def linux() -> None:
    """Linux router datapath: kernel-mode pinning, map mode, status and cleanup."""


@linux.command()
@_common
@click.option(
    "--dead-hold",
    default=DEFAULT_DEAD_HOLD,
    show_default=True,
    type=float,
    help="Seconds a dead (released) next hop is remembered while entries still carry its mark.",
)
@click.option(
    "--protocols",
    "protocols",
    multiple=True,
    metavar="[VIP=]tcp,udp",
    help="Protocols to pin: for every VIP (`tcp,udp`) or one (`1.1.1.1/32=tcp,udp`); "
    "repeatable; default tcp. UDP flows are pinned while conntrack keeps their entry.",
)
@click.option(
    "--ct-copy",
    is_flag=True,
    help="Each census also copies the pins into nft maps, so a conntrack flush does not move "
    "connections pinned before it (costs: docs/kernel-mode.md, 'Pins through a conntrack "
    "flush').",
)
def kernel(
    verbose: bool,
    dead_hold: float,
    protocols: tuple[str, ...],
    ct_copy: bool,
    metrics_address: str | None,
    **opts: Any,
) -> None:
    """Pin connections to VIPs with conntrack marks (runs until SIGTERM/SIGINT).

    On exit the pins stay in place: the kernel keeps pinning while the agent is down.
    Remove everything with `dfagent linux cleanup`.
    """
    from dfagent.config import vip_protocols

    try:
        chosen = vip_protocols(protocols, _parse_vips(opts["vips"]))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--protocols") from None
    if opts["one_direction"] and any("udp" in p for _, p in chosen):
        raise click.UsageError(
            "udp with --one-direction: one-direction pins follow TCP flags; udp pins need "
            "conntrack (a router that sees both directions)"
        )
    cfg = _config(dead_hold=dead_hold, protocols=chosen, ct_copy=ct_copy, **opts)
    _need_root("kernel")
    _setup_logging(verbose)
    with _running(cfg, metrics_address) as agent:
        _on_signals(agent.stop)
        agent.run()


def _mirror_sources(given: tuple[str, ...]) -> list[str] | None:
    """None = any source (only when `any` is written out); else validated addresses."""
    if not given:
        raise click.UsageError(
            "--mirror-source is required with --nexthop-map: the addresses your switches send "
            "mirrors from (or `any`, to accept mirrored SYNs from every host that can reach "
            "this router)"
        )
    if "any" in given:
        if len(given) > 1:
            raise click.BadParameter(
                "`any` cannot be combined with addresses", param_hint="--mirror-source"
            )
        return None
    bad = []
    for g in given:
        try:
            ipaddress.ip_address(g)
        except ValueError:
            bad.append(g)
    if bad:
        raise click.BadParameter(
            f"not an IP address: {', '.join(bad)}", param_hint="--mirror-source"
        )
    return list(given)


@linux.command("map")
@_common
@click.option(
    "--nexthop-map",
    "nexthop_map",
    multiple=True,
    help="SESSION=NEXTHOP: ERSPAN session id (or GRE key) → egress next hop: ADDR, "
    "ADDR%IFNAME or %IFNAME (repeatable). With none, no mirror is received (pins come only "
    "through the Python API).",
)
@click.option(
    "--mirror-source",
    "mirror_sources",
    multiple=True,
    help="Accept mirrored packets only from this address (repeatable; required with "
    "--nexthop-map; `any` accepts every source).",
)
@click.option(
    "--synack",
    is_flag=True,
    help="Second chance: also pin from mirrored SYN-ACKs (the servers' answers, mirrored where "
    "they enter from each member; the session names the member), for flows whose SYN mirror "
    "was lost.",
)
@click.option(
    "--record",
    "record_fallback",
    is_flag=True,
    help="Fallback on a router that sees both directions: a flow without a pin from a mirror "
    "is recorded where the route sent it, as kernel mode does (its conntrack mark).",
)
@click.option("--size", "map_size", default=DEFAULT_PIN_MAP_SIZE, show_default=True, type=int,
              help="Capacity of each pin map (flows).")  # fmt: skip
@click.option("--evict", "pin_evict", is_flag=True,
              help="When a pin map is full, evict its oldest pins instead of refusing new "
              "ones (their connections keep their conntrack mark). The agent then keeps every "
              "pin's key: ~200 B per pin, so pick a --size you can afford. Not with "
              "--one-direction.")  # fmt: skip
@click.option("--timeout", "pin_timeout", default=DEFAULT_PIN_TIMEOUT, show_default=True,
              type=int,
              help="Seconds a pin lives in the map (its connection keeps the mark).")  # fmt: skip
@click.option("--max-items", default=DEFAULT_BATCH_MAX_ITEMS, show_default=True, type=int,
              help="Micro-batch size (pins per nft transaction).")  # fmt: skip
@click.option("--max-delay-ms", default=DEFAULT_BATCH_MAX_DELAY_MS, show_default=True,
              type=float,
              help="Micro-batch max wait, in milliseconds.")  # fmt: skip
def map_cmd(
    verbose: bool,
    nexthop_map: tuple[str, ...],
    mirror_sources: tuple[str, ...],
    synack: bool,
    record_fallback: bool,
    map_size: int,
    pin_evict: bool,
    pin_timeout: int,
    max_items: int,
    max_delay_ms: float,
    metrics_address: str | None,
    **opts: Any,
) -> None:
    """Map mode: per-flow pins (5-tuple → next hop) in nft maps, from mirrored SYNs.

    Keeps the per-next-hop marks, rules and tables in step with the routing table (like
    `kernel`, without the postrouting record rule) and, with --nexthop-map, receives mirrored
    SYNs (GRE/ERSPAN) and pins each flow to the next hop its mirror session says carried it.
    """
    from dfagent.core.egress import EgressResolver, parse_session_map

    try:
        sessions = parse_session_map(nexthop_map)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--nexthop-map") from exc
    if synack and not sessions:
        raise click.UsageError("--synack needs --nexthop-map (the sessions name the members)")
    sources = _mirror_sources(mirror_sources) if sessions else None
    for name, value in (("--size", map_size), ("--timeout", pin_timeout),
                        ("--max-items", max_items)):  # fmt: skip
        if value <= 0:
            raise click.BadParameter("must be more than 0", param_hint=name)
    if record_fallback and opts.get("one_direction"):
        raise click.UsageError("--record needs both directions (not with --one-direction)")
    if pin_evict and opts.get("one_direction"):
        raise click.UsageError(
            "--evict needs conntrack behind the pins (not with --one-direction: an evicted "
            "flow would move)"
        )
    cfg = _config(
        record=record_fallback,
        pin_maps=True,
        pin_map_size=map_size,
        pin_evict=pin_evict,
        pin_timeout=pin_timeout,
        **opts,
    )
    _need_root("map")
    _setup_logging(verbose)
    log = logging.getLogger("dfagent.linux")
    with _running(cfg, metrics_address) as agent:
        if not sessions:
            log.info("map-mode receiver=off (pins through the MapPinner API only)")
            _on_signals(agent.stop)
            agent.run()
            return
        egress = EgressResolver(
            sessions, vips=cfg.vips, counters=agent.metrics.mirror, second_chance=synack
        )
        _serve_mirrors(agent, egress, sources, max_items, max_delay_ms, log)


def _serve_mirrors(
    agent: Agent,
    egress: Any,
    sources: list[str] | None,
    max_items: int,
    max_delay_ms: float,
    log: logging.Logger,
) -> None:
    """The receiver and the mirror feed in their threads, the agent's loop in this one."""
    from dfagent.agent.mirror import open_path

    stop = threading.Event()

    def _stop() -> None:
        stop.set()
        agent.stop()

    _on_signals(_stop)
    try:
        path = open_path(agent, stop, egress, sources, max_items, max_delay_ms / 1000)
    except (OSError, ValueError) as exc:
        _fail(f"mirror receiver: {exc}")
    path.start()
    log.info(
        "map-mode receiver=on sessions=%s sources=%s synack=%s",
        json.dumps({str(k): v for k, v in egress.sessions.items()}),
        ",".join(sources) if sources else "any",
        "on" if egress.second_chance else "off",
    )
    if sources is None:
        log.warning("mirror-source-any: mirrored SYNs are accepted from every host")
    try:
        agent.run()
    finally:
        path.close()


@linux.command()
@STATE_DIR_OPT
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--no-count", is_flag=True, help="Skip the conntrack dump (pinned shows -).")
def status(state_dir: str | None, as_json: bool, no_count: bool) -> None:
    """Whether the agent runs, what is really installed (and what is missing), next hops,
    marks, tables, rules and live pinned-flow counts. Exit 3 when something is missing."""
    from dfagent.backends.linux.admin import format_status
    from dfagent.backends.linux.admin import status as get_status

    _need_root("status")
    data = get_status(_state_dir(state_dir), count=not no_count)
    click.echo(json.dumps(data, indent=1) if as_json else format_status(data))
    if data["missing"] and (data["agent"] or data["nexthops"]):
        sys.exit(3)


@linux.command()
@STATE_DIR_OPT
@click.option("--keep-state", is_flag=True, help="Keep the mark allocations file.")
@click.option(
    "--stop-agent", is_flag=True, help="Stop (SIGTERM) an agent running on this state dir first."
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def cleanup(state_dir: str | None, keep_state: bool, stop_agent: bool, as_json: bool) -> None:
    """Remove every nft table, ip rule and route dfagent created, and only those; clear
    dfagent's bits from conntrack marks. Refuses while an agent runs (see --stop-agent)."""
    from dfagent.backends.linux import admin
    from dfagent.backends.linux.conntrack import ConntrackError
    from dfagent.backends.linux.state import AgentRunning

    _need_root("cleanup")
    sd = _state_dir(state_dir)
    try:
        if stop_agent:
            pid = admin.stop_agent(sd)
            if pid:
                click.echo(f"stopped dfagent pid {pid}", err=True)
        removed = admin.cleanup(sd, keep_state=keep_state)
    except (AgentRunning, ConntrackError, OSError) as exc:
        _fail(str(exc))
    if removed.get("conntrack_marks_left"):
        click.echo(
            f"warning: {removed['conntrack_marks_left']} conntrack entries still carry "
            f"dfagent's mark bits ({removed.get('conntrack_error')}); a later start "
            "quarantines them",
            err=True,
        )
    if as_json:
        click.echo(json.dumps(removed))
    else:
        click.echo(" ".join(f"{k}={v}" for k, v in removed.items() if k != "conntrack_error"))
