"""`dfagent bench pcc`: broken connections when the ECMP set changes, per mode."""

from __future__ import annotations

import click

from dfagent.bench.pcc import ALL_MODES, GROUPS, LABELS, MODES, TOPOLOGIES, PccBench
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
@click.option(
    "--fresh", default=60, show_default=True, help="New connections after each event (held)."
)
@click.option(
    "--during-rate",
    default=40.0,
    show_default=True,
    help="New connections per second while each change is applied (held).",
)
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
    during_rate: float,
    chart: str | None,
    as_json: bool,
    lab: str,
    eos_agents: str,
) -> None:
    """Hold N long-lived TCP connections through the resilient-ecmp lab's router, a request
    on each every 100 ms, and count how many break while s1 is drained, s4 is added, s2's BGP
    session drops and s1 is undrained — with plain ECMP, a resilient nexthop group (the
    "ideal routing daemon": the bench edits it), and dfagent's kernel and map modes. New
    connections opened during and after each change are held and counted too. With --lab
    egress-ecmp: from a host through two NAT gateways, per gateway policy."""
    if lab == "egress-ecmp":
        default_modes = modes == ",".join(MODES)
        egress_cmd.run(connections, modes, fresh, as_json, default_modes)
        return
    wanted = modes_list(modes, ALL_MODES)
    result = run_lab_bench(
        lambda log: PccBench(
            connections,
            fresh=fresh,
            log=log,
            topology=topology,
            eos_agents=eos_agents,
            during_rate=during_rate,
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
        + "; a request every 100 ms (the target) on every held connection through each event",
        "groups: initial = opened before the first event; after = opened after each event, "
        "held through the later ones; during = opened while each change was applied; "
        "ms/req: how often each held connection was asked, on average",
    ]
    head = "  ".join(f"{g + ' alive/broken':>20}" for g in GROUPS)
    lines.append(
        f"{'mode':20} {'event':21} {head}  {'ms/req':>6}  new connections went to (after | during)"
    )
    for mode, r in result["modes"].items():
        label = r.get("label", mode)
        for ev in r["events"]:
            cells = "  ".join(
                f"{str(ev['groups'][g]['alive']) + '/' + str(ev['groups'][g]['broken']):>20}"
                for g in GROUPS
            )
            went = " ".join(f"{k}:{v}" for k, v in ev["fresh"].items())
            during = " ".join(f"{k}:{v}" for k, v in ev["during"].items())
            every = 1000 * ev["seconds"] / max(1, ev["rounds"])  # 100 unless the holder lags
            lines.append(f"{label:20} {ev['event']:21} {cells}  {every:6.0f}  {went} | {during}")
        totals = "  ".join(
            f"{str(x['opened']) + '/' + str(x['broken']):>20}" for x in r["groups"].values()
        )
        failed = {g: x["failed_to_open"] for g, x in r["groups"].items() if x["failed_to_open"]}
        lines.append(
            f"{label:20} {'total opened/broken':21} {totals}  = {r['broken_total']} broken"
            + (f"; failed to open: {failed}" if failed else "")
        )
    if any(m == "resilient" for m in result["modes"]):
        lines.append(
            f"{LABELS['resilient']}: a Linux resilient nexthop group whose members the bench "
            "itself edits at each event (what a routing daemon would have to do; none here does)"
        )
    rate = result.get("new_connection_rate")
    if rate:
        lines.append(
            f"new connections/s through lb: {rate['without_pinning']} without pinning (no "
            f"conntrack), {rate['conntrack_only']} with conntrack only, {rate['kernel_mode']} "
            f"with kernel mode: {rate['ratio']:.0%} of no pinning, "
            f"{rate['ratio_vs_conntrack']:.0%} of conntrack only"
        )
    return "\n".join(lines)
