"""`dfagent bench churn`: next-hop changes every second under connection churn and a SYN flood."""

from __future__ import annotations

import click

from dfagent.bench.churn import MODES, ChurnBench, format_table
from dfagent.bench.churn_chart import write_chart
from dfagent.cli.bench import JSON_OPTION, Log, Result, bench, modes_list, run_lab_bench


@bench.command("churn")
@click.option("--seconds", default=600.0, show_default=True, type=click.FloatRange(5, 3600),
              help="How long each mode runs (a next-hop change every second).")  # fmt: skip
@click.option("--connections", "-n", default=200, show_default=True,
              type=click.IntRange(1, 20_000),
              help="Connections held (and carrying traffic) the whole run.")  # fmt: skip
@click.option("--rate", default=20.0, show_default=True, type=click.FloatRange(0.1, 500),
              help="New connections per second (each held --hold s, then closed).")  # fmt: skip
@click.option("--hold", default=3.0, show_default=True, type=click.FloatRange(0.1, 60),
              help="Seconds each new connection carries traffic before it closes.")  # fmt: skip
@click.option("--flood-rate", default=200.0, show_default=True,
              type=click.FloatRange(10, 20_000),
              help="Spoofed SYNs per second at the VIP during the run.")  # fmt: skip
@click.option("--capacity", default=1000, show_default=True, type=click.IntRange(10, 2_000_000),
              help="Map mode: each pin map's size (small: the flood fills it).")  # fmt: skip
@click.option("--modes", default=",".join(MODES), show_default=True,
              help="Comma-separated: ecmp (no dfagent), kernel, map (pins from mirrored SYNs "
              "alone), map-record (map mode with --record). Each runs on a fresh lab.")  # fmt: skip
@click.option("--chart", type=click.Path(dir_okay=False),
              help="Write a PNG chart (pin-table size, evictions, RSS, broken) here.")  # fmt: skip
@JSON_OPTION
def churn_cmd(
    seconds: float,
    connections: int,
    rate: float,
    hold: float,
    flood_rate: float,
    capacity: int,
    modes: str,
    chart: str | None,
    as_json: bool,
) -> None:
    """On the resilient-ecmp lab: drain s1, undrain s1, s4 announces, s4 withdraws, one a
    second, while held connections carry a request every 100 ms, new ones open and close at
    a steady rate, and a spoofed SYN flood fills the pin table; broken connections, pin-table
    size, evictions and agent RSS per mode."""
    wanted = modes_list(modes, MODES)

    def work(log: Log) -> Result:
        b = ChurnBench(connections, seconds, rate, hold, flood_rate, capacity, log=log)
        return b.run(wanted)

    result = run_lab_bench(work, as_json, format_table, stoppable=True)
    if chart:
        click.echo(write_chart(result, chart), err=as_json)
