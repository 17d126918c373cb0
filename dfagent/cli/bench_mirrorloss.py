"""`dfagent bench mirrorloss`: broken connections against the share of mirrored SYNs lost."""

from __future__ import annotations

import click

from dfagent.bench.mirrorloss import LOSSES, MODES, MirrorLossBench, format_table
from dfagent.cli.bench import JSON_OPTION, Log, Result, bench, modes_list, run_lab_bench


def _losses(text: str) -> tuple[float, ...]:
    out = []
    for item in text.split(","):
        item = item.strip().removesuffix("%")
        try:
            value = float(item) / 100
        except ValueError:
            value = -1.0
        if not 0.0 <= value <= 1.0:
            raise click.BadParameter(f"{item!r} is not a percentage from 0 to 100")
        out.append(value)
    return tuple(out)


@bench.command("mirrorloss")
@click.option("--connections", "-n", default=400, show_default=True,
              help="Connections opened per loss share.")  # fmt: skip
@click.option("--loss", "losses", default=",".join(f"{x * 100:g}" for x in LOSSES),
              show_default=True,
              help="Comma-separated percentages of mirrored SYNs lost.")  # fmt: skip
@click.option("--modes", default=",".join(MODES), show_default=True,
              help="Comma-separated: ecmp (no dfagent), map (SYN mirrors only), map-synack "
              "(the second chance: SYN-ACK mirrors too), map-synack-lossy (their copies lost "
              "at the same share), map-record (the kernel record as fallback: --record). "
              "Each runs on a fresh lab.")  # fmt: skip
@click.option("--seed", default=1, show_default=True, type=int,
              help="Seed of the shim's losses (the n-th share uses seed + n).")  # fmt: skip
@JSON_OPTION
def mirrorloss_cmd(connections: int, losses: str, modes: str, seed: int, as_json: bool) -> None:
    """Open N connections through lb of the resilient-ecmp lab while the mirror shim loses a
    share of the mirrored SYNs; add s4 and drain s1 with a request on every connection every
    100 ms, and count broken connections per mode and share."""
    shares = _losses(losses)
    wanted = modes_list(modes, MODES)
    if connections <= 0:
        raise click.BadParameter("must be more than 0", param_hint="--connections")

    def work(log: Log) -> Result:
        return MirrorLossBench(connections, shares, log=log, seed=seed).run(wanted)

    run_lab_bench(work, as_json, format_table, stoppable=True)
