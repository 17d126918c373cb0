"""`dfagent bench ctflush`: pinned connections through a conntrack flush (`conntrack -F`)."""

from __future__ import annotations

import json
import sys

import click

from dfagent.bench.ctflush import MODES, CtFlushBench, format_table
from dfagent.bench.pcc import root_required
from dfagent.cli.bench import bench
from dfagent.lab.errors import LabError


@bench.command("ctflush")
@click.option("--connections", "-n", default=400, show_default=True, help="Held connections.")
@click.option("--late", default=0, show_default=True,
              help="Connections opened after the last census, just before the flush (the "
              "window the copy does not cover).")  # fmt: skip
@click.option("--modes", default=",".join(MODES), show_default=True,
              help="Comma-separated: ecmp (no dfagent), kernel-nocopy (--no-ct-copy), "
              "kernel (the copy, default). Each runs on a fresh lab.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="JSON result on stdout.")
def ctflush_cmd(connections: int, late: int, modes: str, as_json: bool) -> None:
    """Hold N connections through lb of the resilient-ecmp lab with a request on each every
    100 ms, drain s1 and flush lb's conntrack table; count broken connections per mode."""
    wanted = [m.strip() for m in modes.split(",") if m.strip()]
    log = (lambda m: click.echo(m, err=True)) if as_json else click.echo
    try:
        root_required()
        result = CtFlushBench(connections, late=late, log=log).run(wanted)
    except LabError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    click.echo(json.dumps(result) if as_json else format_table(result))
