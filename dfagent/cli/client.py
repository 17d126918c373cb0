"""`dfagent status|nexthops|flows|drain|undrain|events|resync`: clients of the running agent.

They talk to the agent's control API over its Unix socket (``--socket`` or DFAGENT_SOCKET);
the agent does the work, these commands only ask and print. ``--json`` everywhere.
Every failure is one ``error: …`` line on stderr, never a traceback. Exit codes
(docs/api.md): 0 ok, 1 agent error, 2 usage, 3 not found, 4 deadline reached,
69 agent not running, 77 permission denied, 130 interrupted.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import click

from dfagent.api.client import AgentNotRunning, AgentPermissionDenied, Client, ClientError
from dfagent.api.control import InvalidArgument, NotFound
from dfagent.api.server import DEFAULT_SOCKET
from dfagent.core.model import NEXTHOP_STATES, DrainInfo, Event, FlowFilter, FlowInfo

EXIT_AGENT_ERROR = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_DEADLINE = 4
EXIT_NOT_RUNNING = 69  # EX_UNAVAILABLE (sysexits.h)
EXIT_PERMISSION = 77  # EX_NOPERM
EXIT_INTERRUPTED = 130


def _fail(msg: str, code: int) -> None:
    click.echo(f"error: {msg}", err=True)
    sys.exit(code)


@contextmanager
def _agent(socket_path: str) -> Iterator[Client]:
    """A connected client; every error it raises ends the command with its exit code."""
    try:
        with Client(socket_path) as client:
            yield client
    except AgentNotRunning as exc:
        _fail(str(exc), EXIT_NOT_RUNNING)
    except AgentPermissionDenied as exc:
        _fail(str(exc), EXIT_PERMISSION)
    except NotFound as exc:
        _fail(str(exc), EXIT_NOT_FOUND)
    except InvalidArgument as exc:
        _fail(str(exc), EXIT_USAGE)
    except ClientError as exc:
        _fail(str(exc), EXIT_AGENT_ERROR)


def _common(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")(f)
    return click.option(
        "--socket",
        "socket_path",
        envvar="DFAGENT_SOCKET",
        default=DEFAULT_SOCKET,
        show_default=True,
        metavar="PATH",
        help="The agent's control socket (env DFAGENT_SOCKET).",
    )(f)


def _dump(data: object) -> None:
    click.echo(json.dumps(data, indent=1))


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(text: str) -> float:
    """``90s``, ``10m``, ``1h``, ``1.5s``, ``250ms`` or plain seconds -> seconds."""
    m = _DURATION.match(text)
    if not m or float(m.group(1)) <= 0:
        raise ValueError(f"{text!r} is not a duration like 90s, 10m or 1h")
    return float(m.group(1)) * _UNIT[m.group(2)]


class Duration(click.ParamType):
    name = "DURATION"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, float):
            return value
        try:
            return parse_duration(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def fmt_duration(seconds: float) -> str:
    if seconds < 10 and not float(seconds).is_integer():
        return f"{seconds:.1f}s"  # short --timeout values in tests and scripts
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def _ts(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _count(n: int | None) -> str:
    return "-" if n is None else str(n)


def _flows(n: int | None) -> str:
    return f"{_count(n)} pinned flow{'' if n == 1 else 's'}"


# --- status, nexthops --------------------------------------------------------------------


@click.command()
@_common
def status(socket_path: str, as_json: bool) -> None:
    """The running agent: mode, VIPs, next hops by state, pinned connections, health."""
    with _agent(socket_path) as agent:
        st = agent.status()
    if as_json:
        _dump(st.to_json())
        return
    up = fmt_duration(max(0.0, time.time() - st.started_at))
    counts = ", ".join(f"{st.nexthops.get(s, 0)} {s}" for s in NEXTHOP_STATES)
    health = "ok" if st.healthy else "DEGRADED"
    lines = [
        f"dfagent {st.version}  mode {st.mode}  pid {st.pid}  up {up} (since {_ts(st.started_at)})",
        f"config    {st.config_file or '-'}",
        f"vips      {' '.join(st.vips) or '-'}",
        f"nexthops  {counts}",
        f"pinned    {_count(st.pinned)}  repairs {st.repairs}",
        f"health    {health}",
    ]
    lines += [f"  problem: {p}" for p in st.problems]
    click.echo("\n".join(lines))


def _table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in [header, *rows]
    )


@click.command()
@_common
def nexthops(socket_path: str, as_json: bool) -> None:
    """Every next hop the agent tracks, with its state and pinned connections."""
    with _agent(socket_path) as agent:
        nhs = agent.list_nexthops()
    if as_json:
        _dump([n.to_json() for n in nhs])
        return
    rows = [
        (
            n.name,
            n.address,
            n.ifname,
            f"ipv{n.family}",
            n.state,
            _count(n.pinned),
            f"0x{n.mark:08x}",
            str(n.table),
        )
        for n in nhs
    ]
    click.echo(
        _table(("NAME", "ADDRESS", "IFNAME", "FAMILY", "STATE", "PINNED", "MARK", "TABLE"), rows)
    )


# --- flows ----------------------------------------------------------------------------------


def _filters(f: Callable[..., Any]) -> Callable[..., Any]:
    port = click.IntRange(1, 65535)
    for opt in reversed(
        [
            click.option("--nexthop", metavar="NAME|ADDR", help="Pinned to this next hop."),
            click.option("--vip", metavar="ADDR", help="To this VIP (address or prefix)."),
            click.option("--src", metavar="ADDR", help="From this client address."),
            click.option("--dst", metavar="ADDR", help="To this destination address."),
            click.option("--sport", type=port, help="From this source port."),
            click.option("--dport", type=port, help="To this destination port."),
        ]
    ):
        f = opt(f)
    return f


def _endpoint(addr: str, port: int) -> str:
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


def _flow_rows(flows: list[FlowInfo]) -> str:
    rows = [
        (
            _endpoint(f.src, f.sport),
            _endpoint(f.dst, f.dport),
            f.proto,
            f.nexthop,
            f.state or "-",
            "-" if f.age_s is None else fmt_duration(f.age_s),
        )
        for f in flows
    ]
    return _table(("SOURCE", "DESTINATION", "PROTO", "NEXTHOP", "STATE", "AGE"), rows)


@click.group(invoke_without_command=True)
@_filters
@click.option(
    "--limit",
    default=100,
    show_default=True,
    type=click.IntRange(1, 10_000),
    help="Flows per page.",
)
@click.option("--page-token", default="", metavar="TOKEN", help="Continue a listing.")
@click.option("--all", "all_pages", is_flag=True, help="Follow every page.")
@_common
@click.pass_context
def flows(
    ctx: click.Context,
    socket_path: str,
    as_json: bool,
    limit: int,
    page_token: str,
    all_pages: bool,
    **flt: Any,
) -> None:
    """Pinned connections matching every filter given (`flows purge` deletes them)."""
    if ctx.invoked_subcommand is not None:
        return
    found: list[FlowInfo] = []
    with _agent(socket_path) as agent:
        while True:
            page = agent.list_flows(FlowFilter(**flt), limit, page_token)
            found += page.flows
            page_token = page.next_page_token
            if not (all_pages and page_token):
                break
    if as_json:
        _dump({"flows": [f.to_json() for f in found], "next_page_token": page_token})
        return
    click.echo(_flow_rows(found))
    if page_token:
        click.echo(f"more: --page-token {page_token} (or --all)", err=True)


@flows.command()
@_filters
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@_common
def purge(socket_path: str, as_json: bool, yes: bool, **flt: Any) -> None:
    """Delete the matching pins: those connections follow ECMP again (and may break)."""
    f = FlowFilter(**flt)
    what = "EVERY pinned flow" if f.is_empty() else "the matching pinned flows"
    if not yes:
        if not sys.stdin.isatty():
            _fail(f"refusing to purge {what} without --yes", EXIT_USAGE)
        if not click.confirm(f"Purge {what}?"):
            _fail("nothing purged", EXIT_USAGE)
    with _agent(socket_path) as agent:
        n = agent.purge_flows(f)
    click.echo(json.dumps({"purged": n}) if as_json else f"purged {n} flows")


# --- drain --------------------------------------------------------------------------------


class DrainProgress:
    """Rate and time left from the recent pinned counts (a sliding window of samples).

    The window keeps the rate meaningful when connections end in bursts: one poll's
    difference would swing between 0 and everything.
    """

    def __init__(self, window_s: float = 30.0) -> None:
        self.window_s = window_s
        self.samples: deque[tuple[float, int]] = deque()

    def add(self, now: float, pinned: int) -> None:
        self.samples.append((now, pinned))
        while len(self.samples) > 2 and now - self.samples[0][0] > self.window_s:
            self.samples.popleft()

    def rate(self) -> float | None:
        """Pinned flows gone per second (None until two samples apart in time)."""
        if len(self.samples) < 2:
            return None
        (t0, n0), (t1, n1) = self.samples[0], self.samples[-1]
        return (n0 - n1) / (t1 - t0) if t1 > t0 else None

    def eta(self) -> float | None:
        rate = self.rate()
        if rate is None or rate <= 0 or not self.samples:
            return None
        return self.samples[-1][1] / rate


def progress_line(info: DrainInfo, prog: DrainProgress, elapsed: float) -> str:
    rate, eta = prog.rate(), prog.eta()
    rate_s = "-" if rate is None else f"{rate:.1f}/s"
    eta_s = "?" if eta is None else fmt_duration(eta)
    return (
        f"{info.nexthop} {info.state}: {_flows(info.pinned)} left, "
        f"rate {rate_s}, about {eta_s} left ({fmt_duration(elapsed)} elapsed)"
    )


def _stdout_is_tty() -> bool:  # one place for tests to pretend
    return sys.stdout.isatty()


def _wait_drained(
    agent: Client, first: DrainInfo, timeout: float | None, interval: float, as_json: bool
) -> None:
    tty = _stdout_is_tty() and not as_json
    prog = DrainProgress()
    start = time.monotonic()
    info, last_shown = first, None
    try:
        while True:
            elapsed = time.monotonic() - start
            if info.pinned is not None:
                prog.add(elapsed, info.pinned)
            if as_json:
                rate, eta = prog.rate(), prog.eta()
                click.echo(
                    json.dumps(
                        {
                            **info.to_json(),
                            "elapsed_s": round(elapsed, 3),
                            "rate_per_s": rate,
                            "eta_s": eta,
                        }
                    )
                )
            elif tty:
                # color=True: click would strip the erase-line escape if it thinks this is no TTY
                click.echo("\r\x1b[K" + progress_line(info, prog, elapsed), nl=False, color=True)
            elif info.pinned != last_shown:  # a plain line per change keeps logs short
                click.echo(progress_line(info, prog, elapsed))
            last_shown = info.pinned
            if info.pinned == 0:
                if tty:
                    click.echo()
                if not as_json:
                    click.echo(f"{info.nexthop} drained: no pinned flow left")
                return
            if timeout is not None and elapsed >= timeout:
                if tty:
                    click.echo()
                _fail(
                    f"{info.nexthop} still holds {_flows(info.pinned)} after "
                    f"{fmt_duration(timeout)}; it stays drained (undrain: dfagent undrain "
                    f"{info.nexthop})",
                    EXIT_DEADLINE,
                )
            time.sleep(interval if timeout is None else min(interval, timeout - elapsed))
            info = agent.drain_status(first.nexthop)
    except KeyboardInterrupt:
        if tty:
            click.echo()
        click.echo(
            f"interrupted: {first.nexthop} stays drained "
            f"(undrain with `dfagent undrain {first.nexthop}`)",
            err=True,
        )
        sys.exit(EXIT_INTERRUPTED)


def _show_drain(info: DrainInfo, as_json: bool) -> None:
    if as_json:
        _dump(info.to_json())
    else:
        click.echo(f"{info.nexthop} {info.state}: {_flows(info.pinned)} left")


@click.command()
@click.argument("nexthop", metavar="NEXTHOP")
@click.option("--wait", is_flag=True, help="Wait until no pinned flow is left.")
@click.option(
    "--timeout",
    type=Duration(),
    default=None,
    help="With --wait: give up after this long (90s, 10m, 1h); exit 4.",
)
@click.option(
    "--deadline",
    type=Duration(),
    default=None,
    help="The agent releases the pins left after this long.",
)
@click.option(
    "--interval",
    type=Duration(),
    default=1.0,
    show_default=True,
    help="With --wait: how often to ask.",
)
@_common
def drain(
    socket_path: str,
    as_json: bool,
    nexthop: str,
    wait: bool,
    timeout: float | None,
    deadline: float | None,
    interval: float,
) -> None:
    """Take NEXTHOP (name or address) out of ECMP for new connections; pins stay."""
    if timeout is not None and not wait:
        raise click.UsageError("--timeout needs --wait")
    with _agent(socket_path) as agent:
        info = agent.drain(nexthop, deadline)
        if not wait:
            _show_drain(info, as_json)
            return
        _wait_drained(agent, info, timeout, interval, as_json)


@click.command()
@click.argument("nexthop", metavar="NEXTHOP")
@_common
def undrain(socket_path: str, as_json: bool, nexthop: str) -> None:
    """Put NEXTHOP back into ECMP for new connections."""
    with _agent(socket_path) as agent:
        _show_drain(agent.undrain(nexthop), as_json)


# --- events, resync -------------------------------------------------------------------------


def _event_line(ev: Event) -> str:
    return "  ".join(x for x in (_ts(ev.time), ev.kind, ev.nexthop or "-", ev.detail) if x)


@click.command()
@click.option("--count", type=click.IntRange(1), default=None, help="Stop after N events.")
@_common
def events(socket_path: str, as_json: bool, count: int | None) -> None:
    """Print the agent's events as they happen (one JSON object a line with --json)."""
    with _agent(socket_path) as agent:
        try:
            for n, ev in enumerate(agent.watch_events(), 1):
                click.echo(json.dumps(ev.to_json()) if as_json else _event_line(ev))
                if count is not None and n >= count:
                    return
        except KeyboardInterrupt:
            sys.exit(EXIT_INTERRUPTED)
    _fail("the agent stopped", EXIT_AGENT_ERROR)


@click.command()
@_common
def resync(socket_path: str, as_json: bool) -> None:
    """Have the agent re-read routes, neighbours and conntrack and repair the datapath."""
    with _agent(socket_path) as agent:
        agent.resync()
    click.echo(json.dumps({"resync": "done"}) if as_json else "resync done")


COMMANDS = (status, nexthops, flows, drain, undrain, events, resync)
