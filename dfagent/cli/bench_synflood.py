"""`dfagent bench synflood` and `dfagent bench untrack`: conntrack as an attack surface."""

from __future__ import annotations

import click

from dfagent.bench.synflood import MODES, SynFloodBench, format_table
from dfagent.bench.untrack import UntrackBench
from dfagent.bench.untrack import format_table as format_untrack
from dfagent.cli.bench import JSON_OPTION, Log, Result, bench, modes_list, run_lab_bench


@bench.command("synflood")
@click.option(
    "--connections",
    "-n",
    default=200,
    show_default=True,
    type=click.IntRange(min=1),
    help="Pinned connections held through the flood.",
)
@click.option(
    "--established",
    default=0,
    show_default=True,
    type=click.IntRange(0, 2_000_000),
    help="Assured entries put in lb's table first (a busy router's connections; the "
    "kernel never evicts them for a new flow).",
)
@click.option(
    "--leave-free",
    default=None,
    type=click.IntRange(min=0),
    help="Instead of --established: preload until this many slots are left.",
)
@click.option(
    "--flood-rate",
    default=20000.0,
    show_default=True,
    type=click.FloatRange(min=100, max=200_000),
    help="Spoofed SYNs per second.",
)
@click.option(
    "--new-rate",
    default=20.0,
    show_default=True,
    type=click.FloatRange(min=1, max=1000),
    help="Legitimate new connections per second during the flood.",
)
@click.option(
    "--seconds",
    default=10.0,
    show_default=True,
    type=click.FloatRange(min=1, max=300),
    help="How long new connections are attempted once the table is full.",
)
@click.option("--modes", default=",".join(MODES), show_default=True,
              help="Comma-separated: ecmp (no dfagent), kernel (kernel mode, SYNs tracked), "
              "kernel-guard (--syn-untracked). Each runs on a fresh lab.")  # fmt: skip
@JSON_OPTION
def synflood_cmd(
    connections: int,
    established: int,
    leave_free: int | None,
    flood_rate: float,
    new_rate: float,
    seconds: float,
    modes: str,
    as_json: bool,
) -> None:
    """A spoofed SYN flood fills lb's conntrack table (resilient-ecmp lab) while pinned
    connections carry a request every 100 ms and new connections are attempted at a steady
    rate: broken pinned connections and the new connections' success rate per mode."""
    wanted = modes_list(modes, MODES)

    def work(log: Log) -> Result:
        b = SynFloodBench(
            connections, established, flood_rate, new_rate, seconds, log=log, leave_free=leave_free
        )
        return b.run(wanted)

    run_lab_bench(work, as_json, format_table)


@bench.command("untrack")
@click.option(
    "--rounds",
    default=5,
    show_default=True,
    type=click.IntRange(1, 50),
    help="Interleaved rounds of the three modes.",
)
@click.option(
    "--seconds",
    default=2.0,
    show_default=True,
    type=click.FloatRange(0.2, 30),
    help="Seconds of traffic per round and mode.",
)
@click.option(
    "--flows",
    default=256,
    show_default=True,
    type=click.IntRange(1, 4096),
    help="UDP source ports (flows) of the load.",
)
@JSON_OPTION
def untrack_cmd(rounds: int, seconds: float, flows: int, as_json: bool) -> None:
    """Traffic that is not for a VIP through lb (resilient-ecmp lab): no conntrack entry with
    dfagent, and its forwarding rate without dfagent, with it, and with it tracking
    everything (--track-others), in one run."""
    run_lab_bench(
        lambda log: UntrackBench(rounds, seconds, flows, log=log).run(), as_json, format_untrack
    )
