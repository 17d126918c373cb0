"""`dfagent bench pcc --lab egress-ecmp`: the egress variant of the broken-connection count."""

from __future__ import annotations

import click

from dfagent.bench.egress import MODES, EgressBench, format_table
from dfagent.cli.bench import modes_list, run_lab_bench


def run(connections: int, modes: str, fresh: int, as_json: bool, default_modes: bool) -> None:
    wanted = list(MODES) if default_modes else modes_list(modes)
    unknown = [m for m in wanted if m not in MODES]
    if unknown:
        raise click.UsageError(f"--lab egress-ecmp knows modes {', '.join(MODES)}, not {unknown}")
    run_lab_bench(lambda log: EgressBench(connections, fresh=fresh, log=log).run(wanted),
                  as_json, format_table)  # fmt: skip
