"""`dfagent bench agent`: `dfagent run` at scale — memory with 1 M pins (map mode), `flows`
latency, restart to reconciled."""

from __future__ import annotations

import click

from dfagent.bench.agent import AgentBench, format_table
from dfagent.cli.bench import JSON_OPTION, bench, run_lab_bench


@bench.command("agent")
@click.option(
    "--pins",
    default=1_000_000,
    show_default=True,
    type=click.IntRange(min=1000),
    help="Map-mode pins for the memory and flows figures.",
)
@click.option(
    "--restart-pins",
    default=100_000,
    show_default=True,
    type=click.IntRange(min=1),
    help="Pins held while the agent is SIGKILLed and restarted.",
)
@click.option(
    "--calls",
    default=7,
    show_default=True,
    type=click.IntRange(min=1),
    help="`flows --limit 100` calls per figure.",
)
@click.option(
    "--modes",
    default="mirror,kernel",
    show_default=True,
    type=click.Choice(["mirror,kernel", "mirror", "kernel"]),
    help="Modes of the restart phase (mirror = map mode).",
)
@JSON_OPTION
def agent_cmd(pins: int, restart_pins: int, calls: int, modes: str, as_json: bool) -> None:
    """`dfagent run` in a router namespace: RSS with 0 and PINS map-mode pins (written
    through the mirror path), `dfagent flows --limit 100` latency at 1,000 and PINS pins,
    and restart-to-ready after SIGKILL with RESTART_PINS pins (0 lost); one run."""
    run_lab_bench(
        lambda log: AgentBench(pins, restart_pins, calls, modes.split(","), log=log).run(),
        as_json, format_table, stoppable=True,
    )  # fmt: skip
