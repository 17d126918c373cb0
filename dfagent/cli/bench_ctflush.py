"""`dfagent bench ctflush`: pinned connections through a conntrack flush (`conntrack -F`)."""

from __future__ import annotations

import json
import subprocess
import sys

import click

from dfagent.bench import ctcost
from dfagent.bench.ctflush import MODES, CtFlushBench, format_cost, format_table
from dfagent.bench.pcc import root_required
from dfagent.cli.bench import bench
from dfagent.lab.errors import LabError


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
@click.option("--json", "as_json", is_flag=True, help="JSON result on stdout.")
def ctflush_cmd(connections: int, late: int, modes: str, cost_flows: int, as_json: bool) -> None:
    """Hold N connections through lb of the resilient-ecmp lab with a request on each every
    100 ms, drain s1 and flush lb's conntrack table; count broken connections per mode."""
    wanted = [m.strip() for m in modes.split(",") if m.strip()]
    log = (lambda m: click.echo(m, err=True)) if as_json else click.echo
    try:
        root_required()
        result = CtFlushBench(connections, late=late, log=log).run(wanted) if wanted else {}
        if cost_flows:
            result["cost"] = ctcost.measure(cost_flows)
    except (LabError, subprocess.CalledProcessError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    if as_json:
        click.echo(json.dumps(result))
        return
    if "modes" in result:
        click.echo(format_table(result))
    if "cost" in result:
        click.echo(format_cost(result["cost"]))
