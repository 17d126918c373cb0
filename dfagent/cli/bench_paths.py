"""`dfagent bench icmp|flowlabel|udp`: what a router on the path does to pinned flows (ICMP
errors, IPv6 flow labels) and UDP sessions, dfagent against plain ECMP in the same run."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from dfagent.bench import flowlabel as fl_bench
from dfagent.bench import icmp as icmp_bench
from dfagent.bench import udp as udp_bench
from dfagent.bench.midlab import MidBench
from dfagent.cli.bench import JSON_OPTION, Log, Result, bench, modes_list, run_lab_bench


def _run(make: Callable[[Log], MidBench], modes: str, as_json: bool,
         table: Callable[[Result], str]) -> None:  # fmt: skip
    wanted = modes_list(modes, make(print).modes)
    run_lab_bench(lambda log: make(log).run(wanted), as_json, table)


def _modes(known: tuple[str, ...]) -> Callable[[Any], Any]:
    return click.option("--modes", default=",".join(known), show_default=True,
                        help="Comma-separated; each runs on a fresh lab.")  # fmt: skip


@bench.command("icmp")
@click.option("--connections", "-n", default=300, show_default=True, help="Connections.")
@_modes(icmp_bench.IcmpBench.modes)
@JSON_OPTION
def icmp(connections: int, modes: str, as_json: bool) -> None:
    """ICMP errors about pinned flows (PMTU, RFC 7690): where they land, and path MTU
    discovery after a drain, with plain ECMP and dfagent's kernel and map modes."""
    _run(lambda log: icmp_bench.IcmpBench(connections, log=log), modes, as_json,
         icmp_bench.format_table)  # fmt: skip


@bench.command("flowlabel")
@click.option("--connections", "-n", default=300, show_default=True, help="IPv6 connections.")
@click.option("--rounds", default=3, show_default=True, help="Loss rounds.")
@click.option("--loss", default=1.0, show_default=True, help="Seconds of loss per round.")
@_modes(fl_bench.FlowLabelBench.modes)
@JSON_OPTION
def flowlabel(connections: int, rounds: int, loss: float, modes: str, as_json: bool) -> None:
    """lb hashes IPv6 on the flow label; retransmission timeouts re-label the client's
    connections. Moved connections with plain ECMP and dfagent's kernel and map modes."""
    if rounds < 1 or loss <= 0:
        raise click.UsageError("--rounds must be at least 1 and --loss more than 0 seconds")
    _run(lambda log: fl_bench.FlowLabelBench(connections, log=log, rounds=rounds, loss=loss),
         modes, as_json, fl_bench.format_table)  # fmt: skip


@bench.command("udp")
@click.option("--connections", "-n", default=300, show_default=True, help="UDP sessions.")
@_modes(udp_bench.UdpBench.modes)
@JSON_OPTION
def udp(connections: int, modes: str, as_json: bool) -> None:
    """Long-lived UDP sessions (QUIC-like) through drain, add and BGP-down: lost sessions
    with plain ECMP, kernel mode pinning UDP, and kernel mode with TCP only."""
    _run(lambda log: udp_bench.UdpBench(connections, log=log), modes, as_json,
         udp_bench.format_table)  # fmt: skip
