"""`dfagent demo`: the main job on the built-in lab, start to finish, leaving nothing behind.

1. bring up the resilient-ecmp lab (client → lb → anycast servers over BGP), check that it
   converged, show lb's view, take it down;
2. run the broken-connection benchmark on it: live TCP connections through lb (a request on
   each every 100 ms) while s1 is drained, s4 added, s2's BGP session dropped and s1
   undrained — with plain ECMP, a resilient nexthop group (the "ideal routing daemon"), and
   dfagent in kernel mode and in map mode; connections opened during and after each change
   are held and counted too.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import click

from dfagent.bench.pcc import MODES, PccBench
from dfagent.bench.pcc_chart import write_chart
from dfagent.cli.bench_pcc import format_table
from dfagent.cli.lab import _run_checks
from dfagent.lab import runner, spec
from dfagent.lab.errors import LabError

DEMO_LAB = "resilient-ecmp"
SHOW = (
    ("lb", ["vtysh", "-c", "show bgp ipv4 unicast summary"]),
    ("lb", ["ip", "route", "show", "1.1.1.1"]),
)


@click.command()
@click.option("--connections", "-n", default=300, show_default=True)
@click.option("--out", default="bench-out", show_default=True, help="Where the chart goes.")
def demo(connections: int, out: str) -> None:
    """Bring up the resilient-ecmp lab, check it, then count broken connections per mode."""
    start = time.monotonic()
    try:
        the_lab = spec.load(DEMO_LAB)
        runner.down(the_lab.name)  # a previous run left up: start clean
        state = runner.up(the_lab)
    except LabError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    try:
        rc = _run_checks(state, the_lab, as_json=False)
        click.echo(f"up + check: {time.monotonic() - start:.1f}s")
        for node, cmd in SHOW:
            click.echo(f"\n--- {node}: {' '.join(cmd)}", nl=True)
            sys.stdout.flush()
            subprocess.run(runner.exec_argv(state, node, cmd), check=False)
    finally:
        runner.down(the_lab.name)
    if rc != 0:
        sys.exit(rc)
    click.echo(f"\n=== {connections} live connections per mode, through lb ===")
    try:
        result = PccBench(connections, log=click.echo).run(list(MODES))
    except LabError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    Path(out).mkdir(exist_ok=True)
    click.echo("\n" + format_table(result))
    click.echo(write_chart(result, str(Path(out) / "pcc.png")))
    pinned = [m for m in ("kernel", "map") if m in result["modes"]]
    broken = {m: result["modes"][m]["broken_total"] for m in pinned}
    click.echo(f"dfagent modes broke {broken} connections; nothing left behind.")
    sys.exit(0 if not any(broken.values()) else 1)
