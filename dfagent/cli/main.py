"""Entry point of the `dfagent` command; each command group lives in its own module."""

from __future__ import annotations

import click

from dfagent import __version__
from dfagent.cli.bench import bench
from dfagent.cli.client import COMMANDS as AGENT_COMMANDS
from dfagent.cli.config import config_group
from dfagent.cli.decode import decode
from dfagent.cli.demo import demo
from dfagent.cli.eos import eos_group, hooks_group
from dfagent.cli.lab import lab
from dfagent.cli.linux import linux
from dfagent.cli.run import run_cmd


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="dfagent")
def cli() -> None:
    """dfagent — keep live TCP connections on their server when the ECMP next-hop set changes.

    It pins each new connection to the next hop ECMP chose for it: in kernel mode with
    conntrack marks and one routing table per next hop, in mirror mode from mirrored SYNs.
    Offline helpers: `decode` (debug a switch's mirror), `lab` (network-namespace labs),
    `bench` (benchmarks).
    """


cli.add_command(lab)
cli.add_command(decode)
cli.add_command(bench)
cli.add_command(linux)
cli.add_command(run_cmd)
cli.add_command(demo)
for _command in AGENT_COMMANDS:  # status, nexthops, flows, drain, …: clients of the agent
    cli.add_command(_command)
cli.add_command(config_group)
cli.add_command(eos_group)
cli.add_command(hooks_group)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
