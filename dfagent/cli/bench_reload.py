"""`dfagent bench reload`: pinned connections through firewall reloads (`flush ruleset`)."""

from __future__ import annotations

import json
import sys

import click

from dfagent.bench.pcc import root_required
from dfagent.bench.reload import MODES, ReloadBench, format_table
from dfagent.cli.bench import bench
from dfagent.lab.errors import LabError


@bench.command("reload")
@click.option("--connections", "-n", default=400, show_default=True, help="Live connections.")
@click.option("--rounds", default=4, show_default=True, help="Firewall reloads per mode.")
@click.option("--modes", default=",".join(MODES), show_default=True,
              help="Comma-separated: repair (agent reinstalls), include (the firewall config "
              "includes dfagent's table), off (--no-repair).")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="JSON result on stdout.")
def reload_cmd(connections: int, rounds: int, modes: str, as_json: bool) -> None:
    """Hold N connections through lb of the resilient-ecmp lab with a request on each every
    100 ms; reload lb's firewall (`nft -f` of a config starting with `flush ruleset`) and then
    drain or undrain s1, ROUNDS times; count broken connections per mode."""
    wanted = [m.strip() for m in modes.split(",") if m.strip()]
    log = (lambda m: click.echo(m, err=True)) if as_json else click.echo
    try:
        root_required()
        result = ReloadBench(connections, rounds=rounds, log=log).run(wanted)
    except LabError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    click.echo(json.dumps(result) if as_json else format_table(result))
