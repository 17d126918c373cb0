"""`dfagent bench pcc`: broken connections when the ECMP set changes, per mode."""

from __future__ import annotations

import click

from dfagent.bench.pcc import ALL_MODES, MODES, TOPOLOGIES, PccBench
from dfagent.bench.pcc_chart import write_chart
from dfagent.cli import bench_egress as egress_cmd
from dfagent.cli.bench import JSON_OPTION, bench, modes_list, run_lab_bench


@bench.command("pcc")
@click.option("--connections", "-n", default=1000, show_default=True, help="Live connections.")
@click.option(
    "--modes",
    default=",".join(MODES),
    show_default=True,
    help="Comma-separated: ecmp, resilient, kernel, map; kernel-ct and map-ct keep pins in "
    "conntrack on the asymmetric topology too (to measure what --one-direction fixes); eos: "
    "lb plays an Arista switch (the eAPI test switch driving its datapath), agents with the "
    "EOS backend pin over eAPI.",
)
@click.option(
    "--topology",
    type=click.Choice(sorted(TOPOLOGIES)),
    default="symmetric",
    show_default=True,
    help="symmetric: lb sees both directions (resilient-ecmp). asymmetric: the servers "
    "answer the client directly (resilient-ecmp-dsr), the agent runs with --one-direction.",
)
@click.option("--fresh", default=60, show_default=True, help="New connections after each event.")
@click.option("--chart", type=click.Path(dir_okay=False), help="Write a PNG chart here.")
@JSON_OPTION
@click.option(
    "--lab",
    type=click.Choice(["resilient-ecmp", "egress-ecmp"]),
    default="resilient-ecmp",
    show_default=True,
    help="egress-ecmp: hosts behind two NAT gateways (modes ecmp, kernel; see bench/egress.py).",
)
@click.option(
    "--eos-agents",
    type=click.Choice(["servers", "lb"]),
    default="servers",
    show_default=True,
    help="Mode eos: an agent on each server with the VIP as mirror destination, or one on lb.",
)
def pcc(
    connections: int,
    modes: str,
    topology: str,
    fresh: int,
    chart: str | None,
    as_json: bool,
    lab: str,
    eos_agents: str,
) -> None:
    """Open N long-lived TCP connections through the resilient-ecmp lab's router and count
    how many break when s1 is drained, s4 is added, s2's BGP session drops and s1 is
    undrained — with plain ECMP, a resilient nexthop group, and dfagent's kernel and map
    modes. With --lab egress-ecmp: from a host through two NAT gateways, per gateway policy."""
    if lab == "egress-ecmp":
        default_modes = modes == ",".join(MODES)
        egress_cmd.run(connections, modes, fresh, as_json, default_modes)
        return
    wanted = modes_list(modes, ALL_MODES)
    result = run_lab_bench(
        lambda log: PccBench(
            connections, fresh=fresh, log=log, topology=topology, eos_agents=eos_agents
        ).run(wanted),
        as_json,
        format_table,
    )
    if chart:
        click.echo(write_chart(result, chart), err=as_json)


def format_table(result: dict) -> str:
    lines = [
        f"{result['connections']} connections per mode, {result.get('topology', 'symmetric')}"
        f" topology ({result.get('lab', 'resilient-ecmp')}"
        + (f"; eos modes on {result['eos_lab']})" if result.get("eos_lab") else ")")
    ]
    lines.append(f"{'mode':10} {'event':14} {'alive':>7} {'broken':>7}  fresh connections went to")
    for mode, r in result["modes"].items():
        for ev in r["events"]:
            fresh = " ".join(f"{k}:{v}" for k, v in ev["fresh"].items())
            lines.append(f"{mode:10} {ev['event']:14} {ev['alive']:7} {ev['broken']:7}  {fresh}")
        lines.append(f"{mode:10} {'total':14} {'':7} {r['broken_total']:7}")
    rate = result.get("new_connection_rate")
    if rate:
        lines.append(
            f"new connections/s through lb: {rate['without_pinning']} without pinning (no "
            f"conntrack), {rate['conntrack_only']} with conntrack only, {rate['kernel_mode']} "
            f"with kernel mode: {rate['ratio']:.0%} of no pinning, "
            f"{rate['ratio_vs_conntrack']:.0%} of conntrack only"
        )
    return "\n".join(lines)
