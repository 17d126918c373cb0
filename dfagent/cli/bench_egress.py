"""`dfagent bench pcc --lab egress-ecmp`: the egress variant of the broken-connection count."""

from __future__ import annotations

import json

import click

from dfagent.bench.egress import MODES, EgressBench, format_table
from dfagent.bench.pcc import root_required
from dfagent.lab.errors import LabError


def run(connections: int, modes: str, fresh: int, as_json: bool, default_modes: bool) -> int:
    wanted = list(MODES) if default_modes else [m.strip() for m in modes.split(",") if m.strip()]
    unknown = [m for m in wanted if m not in MODES]
    if unknown:
        raise click.UsageError(f"--lab egress-ecmp knows modes {', '.join(MODES)}, not {unknown}")
    log = (lambda m: click.echo(m, err=True)) if as_json else click.echo
    try:
        root_required()
        result = EgressBench(connections, fresh=fresh, log=log).run(wanted)
    except LabError as exc:
        click.echo(f"error: {exc}", err=True)
        return 2
    click.echo(json.dumps(result) if as_json else format_table(result))
    return 0
