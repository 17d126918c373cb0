"""`dfagent bench restart`: the agent SIGKILLed at scale during a drain and a BGP-down."""

from __future__ import annotations

import click

from dfagent.bench.restart import MODES, RestartBench, format_table
from dfagent.cli.bench import JSON_OPTION, bench, modes_list, run_lab_bench


@bench.command("restart")
@click.option("--connections", "-n", default=400, show_default=True, type=click.IntRange(min=1),
              help="Real connections held (v4 and v6).")  # fmt: skip
@click.option("--pins", default=100_000, show_default=True, type=click.IntRange(min=0),
              help="Synthetic pinned flows in lb's conntrack (map mode: also in its pin "
              "maps).")  # fmt: skip
@click.option("--modes", default=",".join(MODES), show_default=True,
              help="Comma-separated: ecmp (no agent, the baseline), kernel, map. Each runs on "
              "a fresh lab.")  # fmt: skip
@JSON_OPTION
def restart_cmd(connections: int, pins: int, modes: str, as_json: bool) -> None:
    """Hold N connections through lb of the resilient-ecmp lab with a request on each every
    100 ms, plus PINS synthetic pins; drain s1, SIGKILL the agent, take s2's BGP session down,
    start the agent again; count broken connections, lost pins and the time to ready."""
    wanted = modes_list(modes, MODES)
    run_lab_bench(lambda log: RestartBench(connections, pins=pins, log=log).run(wanted),
                  as_json, format_table, stoppable=True)  # fmt: skip
