"""`dfagent lab eapi-switch`: run the eAPI test switch by hand (docs/eapi-switch.md)."""

from __future__ import annotations

import shlex
import signal
import sys
import threading

import click

from dfagent.lab.eapi import DEFAULT_CAPACITY, EapiSwitch


@click.command("eapi-switch")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=0,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="TCP port; 0 picks a free one (printed).",
)
@click.option("--user", "username", default="admin", show_default=True)
@click.option(
    "--password",
    envvar="DFAGENT_EAPI_SWITCH_PASSWORD",
    required=True,
    help="Password of --user (or DFAGENT_EAPI_SWITCH_PASSWORD).",
)
@click.option("--hostname", default="dfagent-sw1", show_default=True)
@click.option(
    "--capacity",
    default=DEFAULT_CAPACITY,
    show_default=True,
    type=click.IntRange(0),
    help="DirectFlow TCAM entries.",
)
@click.option(
    "--directflow-enabled",
    is_flag=True,
    help="Start with `directflow` / `no shutdown` (EOS starts shut down).",
)
@click.option(
    "--unix-socket",
    type=click.Path(dir_okay=False),
    help="Also serve eAPI on this Unix socket, unauthenticated as EOS's on-box one.",
)
@click.option(
    "--tls",
    nargs=2,
    type=click.Path(exists=True, dir_okay=False),
    metavar="CERT KEY",
    help="Serve https with this certificate and key.",
)
@click.option(
    "--datapath",
    type=click.Choice(["none", "linux"]),
    default="none",
    show_default=True,
    help="linux: DirectFlow flows steer this host's forwarding (nft map + policy routing) and "
    "`show ip route` / `show load-balance destination` answer from its kernel (run it on a "
    "lab's router, as root).",
)
@click.option(
    "--vtysh",
    default="vtysh",
    show_default=True,
    help="With --datapath linux: how to reach this host's FRR (IPv6 next hops of BGP routes).",
)
@click.option(
    "--startup-config",
    type=click.Path(exists=True, dir_okay=False),
    help="An EOS startup-config: its switch sections (hostname, DirectFlow, ACLs, monitor "
    "sessions, …) become the running config (interfaces, BGP, eAPI and users are the lab "
    "runner's: docs/eapi-switch.md).",
)
def eapi_switch(
    host: str,
    port: int,
    username: str,
    password: str,
    hostname: str,
    capacity: int,
    directflow_enabled: bool,
    unix_socket: str | None,
    tls: tuple[str, str] | None,
    datapath: str,
    vtysh: str,
    startup_config: str | None,
) -> None:
    """An Arista EOS stand-in speaking eAPI (POST /command-api) until Ctrl-C.

    DirectFlow, the drain's prefix-lists/route-maps/BGP neighbours, and the show commands
    dfagent's EOS backend uses; state lives in memory. Nothing is forwarded unless
    --datapath linux makes its DirectFlow flows steer this host's traffic.
    """
    switch = EapiSwitch(
        host,
        port,
        username,
        password,
        hostname=hostname,
        capacity=capacity,
        directflow_enabled=directflow_enabled,
        unix_socket=unix_socket,
        tls=tls or None,
    )
    dp = None
    if datapath == "linux":
        from dfagent.lab.eapi.linux_datapath import attach

        try:
            dp = attach(switch.state, shlex.split(vtysh))
        except (RuntimeError, OSError, ImportError) as exc:
            click.echo(f"error: the linux datapath cannot start: {exc}", err=True)
            sys.exit(2)
    if startup_config is not None:
        problem = _load_startup(switch, startup_config)
        if problem:
            if dp is not None:
                dp.close()
            click.echo(f"error: {startup_config}: {problem}", err=True)
            sys.exit(2)
    try:
        switch.start()
    except OSError as exc:
        if dp is not None:
            dp.close()
        click.echo(f"error: cannot listen on {host} port {port}: {exc.strerror or exc}", err=True)
        sys.exit(2)
    click.echo(f"eAPI test switch {hostname}: {switch.url} (user {username})", nl=False)
    click.echo(f", unix socket {unix_socket}" if unix_socket else "")
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        while not done.wait(0.2):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        switch.close()
        if dp is not None:
            dp.close()
    click.echo("stopped")


def _load_startup(switch: EapiSwitch, path: str) -> str:
    """Apply a startup-config's switch lines; the refusal as one line ("" when applied)."""
    from pathlib import Path

    from dfagent.lab import ceos
    from dfagent.lab.eapi.tokens import CommandError

    try:
        cfg = ceos.load(Path(path))
        switch.configure(cfg.switch_lines)
    except ceos.CeosConfigError as exc:
        return str(exc).removeprefix(f"{path}: ")
    except CommandError as exc:
        return exc.error
    return ""
