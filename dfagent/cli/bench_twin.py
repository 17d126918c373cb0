"""`dfagent bench twin`: connections moving between two pinning routers that share conntrack."""

from __future__ import annotations

import click

from dfagent.bench.twin import DEFAULT_MODES, MODES, TwinBench, format_table
from dfagent.cli.bench import JSON_OPTION, bench, modes_list, run_lab_bench


@bench.command("twin")
@click.option("--connections", "-n", default=400, show_default=True, help="Live connections.")
@click.option("--modes", default=",".join(DEFAULT_MODES), show_default=True,
              help="Comma-separated: ecmp (no agent, no conntrackd), kernel (dfagent kernel "
              "mode on both lbs, conntrackd sharing their entries), kernel-nosync (the agents "
              "without conntrackd).")  # fmt: skip
@JSON_OPTION
def twin_cmd(connections: int, modes: str, as_json: bool) -> None:
    """Hold N connections through the twin-lb lab (an upstream ECMP router over lb1 and lb2)
    with a request on each every 100 ms; lb1 dies while s1 drains, then lb1 comes back while
    s4 is added; count broken connections per event and mode (each mode on a fresh lab)."""
    wanted = modes_list(modes, MODES)
    run_lab_bench(lambda log: TwinBench(connections, log=log).run(wanted), as_json, format_table)
