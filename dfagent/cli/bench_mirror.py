"""`dfagent bench mirror` (the harness: :mod:`dfagent.bench.mirror`)."""

from __future__ import annotations

import json
import os
from typing import Any

import click

from dfagent.bench.mirror import DEFAULT_RATES, TARGET_PPS, measure
from dfagent.cli.bench import bench


@bench.command("mirror")
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of a table.")
@click.option(
    "--rates",
    default=DEFAULT_RATES,
    show_default=True,
    help="Comma-separated SYNs/s to try, ascending; stops at the first lossy step.",
)
@click.option("--step-packets", default=300_000, show_default=True, help="Packets per step.")
@click.option(
    "--flood-packets",
    default=10_000_000,
    show_default=True,
    help="Packets of the unpaced flood for the RSS check (0: skip it).",
)
@click.option("--senders", default=2, show_default=True,
              help="Sender processes (sendmmsg each); the kernel's transmit and veth receive "
                   "work runs on the senders' CPUs.")  # fmt: skip
def bench_mirror(
    as_json: bool, rates: str, step_packets: int, flood_packets: int, senders: int
) -> None:
    """Mirror receive rate over a veth between two namespaces, and the receiver's RSS."""
    if os.geteuid() != 0:
        raise click.ClickException("bench mirror needs root (network namespaces, raw sockets)")
    rate_list = sorted(int(r) for r in rates.split(",") if r.strip())

    def progress(st: dict[str, Any]) -> None:
        if as_json:
            return
        tgt = f"{st['target_rate']:>8,}/s" if st["target_rate"] else "   flood  "
        click.echo(
            f"{tgt}  sent {st['sent']:>10,} at {st['sent_rate']:>8,}/s  received "
            f"{st['received']:>10,}  loss {st['loss'] * 100:7.3f} %  "
            f"(kernel drops {st['kernel_drops']:,}, queue drops {st['queue_drops']:,})"
        )

    r = measure(rate_list, step_packets, flood_packets, senders, progress)
    r["senders"] = senders
    if as_json:
        click.echo(json.dumps(r))
        return
    best = r["best_rate_under_0.1pct_loss"]
    click.echo(
        f"highest rate with < 0.1 % loss: {best:,} SYNs/s "
        f"(target {TARGET_PPS:,}: {'met' if r['meets_rate'] else 'NOT met'})"
    )
    if "flood" in r:
        fl = r["flood"]
        click.echo(
            f"receiver RSS: {fl['rss_kb_before']:,} kB before, {fl['rss_kb_after']:,} kB after "
            f"{fl['sent']:,} packets (max {fl['rss_kb_max']:,} kB)"
        )
