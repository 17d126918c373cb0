"""`dfagent bench ctflush`: pinned connections through a conntrack flush (`conntrack -F`)."""

from __future__ import annotations

import click

from dfagent.bench import ctcost
from dfagent.bench.ctflush import MODES, CtFlushBench, format_cost, format_table
from dfagent.cli.bench import JSON_OPTION, Log, Result, bench, modes_list, run_lab_bench


@bench.command("ctflush")
@click.option("--connections", "-n", default=400, show_default=True, help="Held connections.")
@click.option("--late", default=0, show_default=True,
              help="Connections opened after the last census, just before the flush (the "
              "window the copy does not cover).")  # fmt: skip
@click.option("--modes", default=",".join(MODES), show_default=True,
              help="Comma-separated: ecmp (no dfagent), kernel-nocopy (kernel mode alone), "
              "kernel (with --ct-copy). Each runs on a fresh lab.")  # fmt: skip
@click.option("--cost-flows", default=0, show_default=True, type=click.IntRange(min=0),
              help="Also measure what the copy costs per census at this many pins (own "
              "namespace): tuple parsing, map writes, kernel and agent memory.")  # fmt: skip
@JSON_OPTION
def ctflush_cmd(connections: int, late: int, modes: str, cost_flows: int, as_json: bool) -> None:
    """Hold N connections through lb of the resilient-ecmp lab with a request on each every
    100 ms, drain s1 and flush lb's conntrack table; count broken connections per mode."""
    wanted = modes_list(modes, MODES) if modes else []

    def work(log: Log) -> Result:
        result = CtFlushBench(connections, late=late, log=log).run(wanted) if wanted else {}
        if cost_flows:
            result["cost"] = ctcost.measure(cost_flows)
        return result

    run_lab_bench(work, as_json, _table)


def _table(result: Result) -> str:
    parts = [format_table(result)] if "modes" in result else []
    return "\n".join(parts + ([format_cost(result["cost"])] if "cost" in result else []))
