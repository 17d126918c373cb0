"""`dfagent bench pin-rate` (the harness: :mod:`dfagent.bench.pinrate`)."""

from __future__ import annotations

import json
import os
from typing import Any

import click

from dfagent.bench.pinrate import TARGET_PINS_PER_S, measure
from dfagent.cli.bench import bench


@bench.command("pin-rate")
@click.option("--flows", default=1_000_000, show_default=True, type=int)
@click.option("--batch", default=1000, show_default=True, type=int, help="Fill batch size.")
@click.option("--syn-rate", default=20_000, show_default=True, type=float)
@click.option("--latency-syns", default=50_000, show_default=True, type=int)
@click.option("--max-items", default=256, show_default=True, type=int)
@click.option("--max-delay-ms", default=2.0, show_default=True, type=float)
@click.option("--hold-sample", default=98, show_default=True, type=int)
@click.option("--json", "as_json", is_flag=True)
def pin_rate(as_json: bool, **opts: Any) -> None:
    """Map mode: new pins/s, p99 SYN→pin latency, 1M-flow hold, kernel bytes per flow."""
    if os.geteuid() != 0:
        raise click.ClickException("needs root (creates a network namespace)")
    try:
        res = measure(opts)
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(res, indent=1))
        return
    lat, hold, mem = res["latency"], res["hold"], res["memory"]
    click.echo(
        f"fill:     {res['flows']:,} flows in {res['fill_seconds']} s = "
        f"{res['pins_per_s']:,} pins/s (batch {res['batch']}; target ≥ {TARGET_PINS_PER_S:,})\n"
        f"latency:  {lat['syns']:,} SYNs at {lat['achieved_rate']:,}/s, flush at "
        f"{lat['max_items']} items or {lat['max_delay_ms']} ms: p50 {lat['p50_ms']} ms, "
        f"p99 {lat['p99_ms']} ms, max {lat['max_ms']} ms\n"
        f"hold:     {hold['present']}/{hold['sampled']} sampled flows present "
        f"({hold['pinned']:,} pinned, map size {hold['map_size']:,})\n"
        f"memory:   {mem['slab_bytes_per_flow']} B/flow kernel slab growth "
        f"(/proc/meminfo; other activity on the machine adds noise)\n"
        f"result:   {'OK' if res['ok'] else 'BELOW TARGET'}"
    )
