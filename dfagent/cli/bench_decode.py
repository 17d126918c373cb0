"""`dfagent bench decode` (the harness: :mod:`dfagent.bench.decode`)."""

from __future__ import annotations

import json

import click

from dfagent.bench.decode import IMPL_TEXT, TARGET_PPS, TARGET_RATIO, ScapyMissing, measure
from dfagent.cli.bench import bench


@bench.command("decode")
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of a table.")
@click.option("--seconds", default=3.0, show_default=True, help="Time per measurement.")
def bench_decode(as_json: bool, seconds: float) -> None:
    """Decode rate of dfagent.wire (C and pure Python) vs scapy on the same mixed corpus."""
    try:
        r = measure(seconds)
    except ScapyMissing as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(r))
        return
    c = r["implementation"] == "c"
    click.echo(f"mixed corpus of {r['corpus_packets']} mirrored SYNs, Python {r['python']}")
    click.echo(f"decode_mirror is the {IMPL_TEXT[r['implementation']]}")
    click.echo(
        f"dfagent.wire  {r['dfagent_syns_per_s']:>12,} SYNs/s   "
        f"(target {TARGET_PPS:,}: {'met' if r['meets_rate'] else 'NOT met'})"
        + ("   [C]" if c else "   [Python]")
    )
    if c:
        click.echo(
            f"pure Python   {r['python_syns_per_s']:>12,} SYNs/s   (C/Python {r['c_over_python']}×)"
        )
    click.echo(f"scapy         {r['scapy_syns_per_s']:>12,} SYNs/s")
    click.echo(
        f"ratio         {r['ratio']:>12,}×        "
        f"(target {TARGET_RATIO}×: {'met' if r['meets_ratio'] else 'NOT met'})"
        + (f"   pure Python/scapy {r['python_over_scapy']:,}×" if c else "")
    )
    click.echo(f"  {'shape':<36} {'C' if c else 'Python':>10}" + (f" {'Python':>10}" if c else ""))
    py = r["per_shape_python_syns_per_s"]
    for name, pps in r["per_shape_syns_per_s"].items():
        click.echo(f"  {name:<36} {pps:>10,}" + (f" {py[name]:>10,}" if c else "") + " SYNs/s")
