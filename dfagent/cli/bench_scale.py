"""`dfagent bench scale`: VIPs × next hops and pinned connections at operator scale."""

from __future__ import annotations

import click

from dfagent.bench.scale import ScaleBench, format_table
from dfagent.cli.bench import JSON_OPTION, bench, run_lab_bench


def _cases(text: str) -> list[tuple[int, int]]:
    out = []
    for item in [x for x in text.split(",") if x.strip()]:
        v, sep, n = item.strip().lower().partition("x")
        if not sep or not v.isdigit() or not n.isdigit() or int(v) < 1 or not 1 <= int(n) <= 250:
            raise click.BadParameter(
                f"{item!r}: write VIPSxNEXTHOPS, e.g. 50x8 (1 to 250 next hops)",
                param_hint="--cases",
            )
        out.append((int(v), int(n)))
    return out


def _counts(text: str) -> list[int]:
    try:
        out = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise click.BadParameter(
            f"{text!r}: comma-separated entry counts", param_hint="--pinned"
        ) from None
    if any(x < 0 for x in out):
        raise click.BadParameter("counts are 0 or more", param_hint="--pinned")
    return out


@bench.command("scale")
@click.option(
    "--cases",
    default="50x8,200x16,1000x32",
    show_default=True,
    help="VIPSxNEXTHOPS, comma-separated; the first is the baseline.",
)
@click.option(
    "--pinned",
    default="0,262144,1000000",
    show_default=True,
    help="Conntrack entries with dfagent marks for the idle-CPU phase ('' skips it).",
)
@click.option(
    "--window",
    default=30.0,
    show_default=True,
    type=click.FloatRange(min=0.5),
    help="Seconds of each idle-CPU measurement.",
)
@click.option(
    "--changes",
    default=10,
    show_default=True,
    type=click.IntRange(min=0),
    help="New routes announced per case to time change → table.",
)
@JSON_OPTION
def scale_cmd(cases: str, pinned: str, window: float, changes: int, as_json: bool) -> None:
    """Kernel mode on a router namespace: one VIP prefix covering V routes of N next hops
    each. Install time, idle CPU (agent + children), change-to-table latency per case, then
    idle CPU with P pinned conntrack entries; all in one run, against the first case."""
    parsed, counts = _cases(cases), _counts(pinned)
    run_lab_bench(
        lambda log: ScaleBench(parsed, counts, window=window, changes=changes, log=log).run(),
        as_json, format_table, stoppable=True,
    )  # fmt: skip
