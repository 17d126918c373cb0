"""`dfagent eos flows|pin|unpin|cleanup` (operator tools on the switch the config names) and
`dfagent hooks eos` (the switch's event-handlers that make the agent resync)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import click

EXIT_ERROR = 1
EXIT_USAGE = 2


def _fail(msg: str, code: int) -> NoReturn:
    click.echo(f"error: {msg}", err=True)
    sys.exit(code)


@contextmanager
def _backend(config_file: str, switch: str | None) -> Iterator[Any]:
    """The backend of the config's switch, its session's errors as one line each."""
    from dfagent.backends.eos.factory import EosSetupError, build_backend
    from dfagent.backends.eos.session import EosError
    from dfagent.config import ConfigError, load

    try:
        cfg = load(config_file)
    except ConfigError as exc:
        for e in exc.errors:
            click.echo(f"{exc.source}: {e}", err=True)
        sys.exit(EXIT_USAGE)
    eos = cfg.backend.eos
    if eos is None:
        _fail(f"{config_file}: backend.type is {cfg.backend.type}, not eos", EXIT_USAGE)
    name = eos.switch_name()
    if switch is not None and switch != name:
        _fail(f"no switch {switch!r} in {config_file} (its switch is {name!r})", EXIT_USAGE)
    try:
        yield build_backend(cfg)
    except EosSetupError as exc:
        _fail(str(exc), EXIT_USAGE)
    except EosError as exc:
        _fail(str(exc), EXIT_ERROR)


def _common(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")(f)
    f = click.option("--switch", metavar="NAME", help="The switch (must be the config's).")(f)
    return click.option("--config", "config_file", required=True, metavar="FILE",
                        help="dfagent.yaml with backend: eos.")(f)  # fmt: skip


def _flow_args(f: Callable[..., Any]) -> Callable[..., Any]:
    for opt, kind, help_ in reversed((
        ("--src", str, "Client address."), ("--sport", click.IntRange(1, 65535), "Client port."),
        ("--dst", str, "VIP address."), ("--dport", click.IntRange(1, 65535), "VIP port."),
    )):  # fmt: skip
        f = click.option(opt, required=True, type=kind, help=help_)(f)
    return f


def _flow(src: str, sport: int, dst: str, dport: int) -> Any:
    import ipaddress

    from dfagent.core.pintable import Flow

    try:
        s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    except ValueError as exc:
        _fail(str(exc), EXIT_USAGE)
    if s.version != d.version:
        _fail("--src and --dst are of different families", EXIT_USAGE)
    return Flow(str(s), str(d), sport, dport)


@click.group("eos")
def eos_group() -> None:
    """This agent's pins on its Arista switch (eAPI; password from the config's password_env)."""


@eos_group.command("flows")
@_common
def flows_cmd(config_file: str, switch: str | None, as_json: bool) -> None:
    """List this agent's flows on the switch (name prefix), with counters and status."""
    with _backend(config_file, switch) as b:
        own = b.own_flows()
    rows = [
        {
            "name": o.name,
            "src": o.flow.src if o.flow else None,
            "sport": o.flow.sport if o.flow else None,
            "dst": o.flow.dst if o.flow else None,
            "dport": o.flow.dport if o.flow else None,
            "nexthop": o.nexthop,
            "packets": o.packets,
            "status": o.status,
        }
        for o in own
    ]
    if as_json:
        click.echo(json.dumps({"switch": b.name, "prefix": b.prefix, "flows": rows}, indent=1))
        return
    click.echo(f"switch {b.name}, prefix {b.prefix}: {len(rows)} flows")
    for r in rows:
        flow = f"{r['src']}:{r['sport']} -> {r['dst']}:{r['dport']}" if r["src"] else "?"
        pkts = "-" if r["packets"] is None else r["packets"]
        click.echo(f"  {flow:<48} via {r['nexthop'] or '-':<16} {pkts:>8} pkts  {r['status']}")


@eos_group.command("pin")
@_common
@_flow_args
@click.option("--nexthop", required=True, help="Next-hop address (or %INTERFACE on DirectFlow).")
def pin_cmd(config_file: str, switch: str | None, as_json: bool, src: str, sport: int,
            dst: str, dport: int, nexthop: str) -> None:  # fmt: skip
    """Pin one connection by hand (the running agent adopts it at its next pass)."""
    from dfagent.backends.eos.names import flow_name

    f = _flow(src, sport, dst, dport)
    with _backend(config_file, switch) as b:
        if b.usable_nexthop(nexthop, f.dst) is None:
            _fail(f"{nexthop!r} is not a next hop for {f.dst} on this switch", EXIT_USAGE)
        if not b.for_vip(f.dst):
            _fail(f"{f.dst} is not in a VIP of {config_file}", EXIT_USAGE)
        b.start()  # DirectFlow on (a fresh switch ships it shut down), the table adopted
        b.pin([(f.src, f.dst, f.sport, f.dport, nexthop)])
        if b.backlog or b.table.stats.rejected or b.table.stats.overflow:
            _fail(f"the switch did not take the pin: {b.stats.last_error or 'no room'}", 1)
    name = flow_name(b.prefix, f)
    if as_json:
        click.echo(json.dumps({"name": name, "nexthop": nexthop, "switch": b.name}))
    else:
        click.echo(f"pinned {name} via {nexthop} on {b.name}")


@eos_group.command("unpin")
@_common
@_flow_args
def unpin_cmd(config_file: str, switch: str | None, as_json: bool, src: str, sport: int,
              dst: str, dport: int) -> None:  # fmt: skip
    """Remove one connection's pin (its packets follow ECMP again)."""
    from dfagent.backends.eos.names import flow_name

    f = _flow(src, sport, dst, dport)
    with _backend(config_file, switch) as b:
        name = flow_name(b.prefix, f)
        there = any(o.name == name for o in b.own_flows())
        if there:
            b.unpin([f])
    if as_json:
        click.echo(json.dumps({"name": name, "removed": there}))
    elif there:
        click.echo(f"removed {name} from {b.name}")
    else:
        _fail(f"no flow {name} on {b.name}", 3)


@eos_group.command("cleanup")
@_common
@click.option("--yes", is_flag=True, help="Do not ask.")
def cleanup_cmd(config_file: str, switch: str | None, as_json: bool, yes: bool) -> None:
    """Remove every flow of this agent (its prefix) from the switch; others' stay."""
    with _backend(config_file, switch) as b:
        if not yes and sys.stdin.isatty():
            click.confirm(f"remove every {b.prefix}-* flow from {b.name}?", abort=True)
        n = b.cleanup()
    if as_json:
        click.echo(json.dumps({"switch": b.name, "prefix": b.prefix, "removed": n}))
    else:
        click.echo(f"removed {n} flows of {b.prefix} from {b.name}")


@click.group("hooks")
def hooks_group() -> None:
    """Configuration that makes a router or switch tell the agent to resync at once."""


@hooks_group.command("eos")
@click.option("--config", "config_file", metavar="FILE",
              help="dfagent.yaml: interfaces from backend.eos.interfaces.")  # fmt: skip
@click.option(
    "--interface",
    "interfaces",
    multiple=True,
    metavar="INTF",
    help="Server-facing interface: its operstatus triggers a resync (repeat).",
)
@click.option(
    "--action",
    default=None,
    metavar="CMD",
    help="What the switch runs (default: dfagent resync, for an agent on it).",
)
@click.option(
    "--ssh",
    "ssh_host",
    metavar="[USER@]HOST",
    help="The agent runs on HOST: the switch runs dfagent resync there by ssh.",
)
def hooks_eos(config_file: str | None, interfaces: tuple[str, ...], action: str | None,
              ssh_host: str | None) -> None:  # fmt: skip
    """Print the EOS event-handlers (BGP ADJCHANGE, interface operstatus) that run
    `dfagent resync`; paste them after `configure` on the switch."""
    from dfagent.backends.eos import hooks

    intfs = list(interfaces)
    if config_file:
        from dfagent.config import ConfigError, load

        try:
            cfg = load(config_file)
        except ConfigError as exc:
            for e in exc.errors:
                click.echo(f"{exc.source}: {e}", err=True)
            sys.exit(EXIT_USAGE)
        if cfg.backend.eos is not None:
            intfs += [i for i in cfg.backend.eos.interfaces if i not in intfs]
    if action and ssh_host:
        _fail("--action or --ssh, not both", EXIT_USAGE)
    if ssh_host:
        user, _, host = ssh_host.rpartition("@")
        action = hooks.remote_action(host, user or "root")
    try:
        lines = hooks.event_handlers(action or hooks.DEFAULT_ACTION, intfs)
    except ValueError as exc:
        _fail(str(exc), EXIT_USAGE)
    click.echo(hooks.as_config(lines), nl=False)
