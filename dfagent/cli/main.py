"""Entry point of the `dfagent` command; each command group lives in its own module.

The modules are imported when their command runs, not at start: importing all of them
(labs, benchmarks, EOS, …) costs 1-2 s on a busy 2-core router, which every `dfagent flows`
and every `dfagent run` start (its restart-to-ready time) would pay.
"""

from __future__ import annotations

import importlib

import click

from dfagent import __version__

# command name → "module:attribute" of its click command
COMMANDS = {
    "lab": "dfagent.cli.lab:lab",
    "decode": "dfagent.cli.decode:decode",
    "bench": "dfagent.cli.bench:bench",
    "linux": "dfagent.cli.linux:linux",
    "run": "dfagent.cli.run:run_cmd",
    "demo": "dfagent.cli.demo:demo",
    # clients of the agent
    "status": "dfagent.cli.client:status",
    "nexthops": "dfagent.cli.client:nexthops",
    "flows": "dfagent.cli.client:flows",
    "drain": "dfagent.cli.client:drain",
    "undrain": "dfagent.cli.client:undrain",
    "events": "dfagent.cli.client:events",
    "resync": "dfagent.cli.client:resync",
    "config": "dfagent.cli.config:config_group",
    "eos": "dfagent.cli.eos:eos_group",
    "hooks": "dfagent.cli.eos:hooks_group",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            module, _, attr = COMMANDS[cmd_name].partition(":")
            self.add_command(getattr(importlib.import_module(module), attr), cmd_name)
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="dfagent")
def cli() -> None:
    """dfagent — keep live TCP connections on their server when the ECMP next-hop set changes.

    It pins each new connection to the next hop ECMP chose for it: in kernel mode with
    conntrack marks and one routing table per next hop, in mirror mode from mirrored SYNs.
    Offline helpers: `decode` (debug a switch's mirror), `lab` (network-namespace labs),
    `bench` (benchmarks).
    """


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
