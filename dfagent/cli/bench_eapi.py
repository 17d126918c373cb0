"""`dfagent bench eapi`: pins/s batched vs one flow per request, and SYN→pin latency."""

from __future__ import annotations

import json
import sys

import click

from dfagent.cli.bench import bench


@bench.command("eapi")
@click.option("--pins", default=1500, show_default=True, help="Pins written batched.")
@click.option("--single", default=300, show_default=True, help="Pins written one per request.")
@click.option("--batch", default=256, show_default=True, help="Pins per micro-batch.")
@click.option("--transport", type=click.Choice(["http", "https"]), default="http",
              show_default=True, help="https: a self-signed certificate, verified.")  # fmt: skip
@click.option("--syn-rate", default=1000.0, show_default=True, help="SYNs/s for the latency.")
@click.option("--syns", default=1000, show_default=True, help="SYNs for the latency.")
@click.option("--json", "as_json", is_flag=True, help="JSON result on stdout.")
def eapi_cmd(pins: int, single: int, batch: int, transport: str, syn_rate: float, syns: int,
             as_json: bool) -> None:  # fmt: skip
    """Pins through one eAPI session to the eAPI test switch (real pyeapi, loopback): batched
    against one flow per request in the same run (target ≥ 1,000 pins/s batched), and p99
    SYN→pin latency through the agent's loop."""
    from dfagent.backends.eos.session import EosError
    from dfagent.bench.eapi import format_table, run

    if min(pins, single, batch, syns) < 1 or syn_rate <= 0:
        click.echo("error: counts and rates must be more than 0", err=True)
        sys.exit(2)
    log = (lambda m: click.echo(m, err=True)) if as_json else click.echo
    try:
        result = run(pins, single, batch, transport, syn_rate, syns, log=log)
    except (EosError, RuntimeError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    click.echo(json.dumps(result) if as_json else format_table(result))
