"""`dfagent demo`: the main job on the built-in lab, start to finish, leaving nothing behind."""

from __future__ import annotations

import subprocess
import sys
import time

import click

from dfagent.cli.lab import _run_checks
from dfagent.lab import runner, spec
from dfagent.lab.errors import LabError

DEMO_LAB = "egress-ecmp"
SHOW = (
    ("host", ["ip", "route", "show", "default"]),
    ("host", ["vtysh", "-c", "show bgp summary"]),
    ("r1", ["vtysh", "-c", "show bgp summary"]),
)


@click.command()
@click.option("--keep", is_flag=True, help="Leave the lab up afterwards.")
def demo(keep: bool) -> None:
    """Bring up the egress-ecmp lab, check it, show its state, tear it down."""
    start = time.monotonic()
    try:
        the_lab = spec.load(DEMO_LAB)
        runner.down(the_lab.name)  # a previous run left up: start clean
        state = runner.up(the_lab)
    except LabError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    rc = 1
    try:
        rc = _run_checks(state, the_lab, as_json=False)
        click.echo(f"up + check: {time.monotonic() - start:.1f}s")
        for node, cmd in SHOW:
            click.echo(f"\n--- {node}: {' '.join(cmd)}")
            subprocess.run(runner.exec_argv(state, node, cmd), check=False)
    finally:
        if keep:
            click.echo(f"\nlab left up: `dfagent lab down {the_lab.name}` removes it")
        else:
            runner.down(the_lab.name)
            click.echo(f"\n{the_lab.name}: down, nothing left behind")
    sys.exit(rc)
