"""`dfagent lab …`: network-namespace labs described in containerlab format."""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from dfagent.cli.eapi_switch import eapi_switch
from dfagent.lab import checks, fabric_gen, runner, spec
from dfagent.lab import containerlab as containerlab_files
from dfagent.lab.errors import LabError
from dfagent.lab.state import LabState, all_states, load_state
from dfagent.lab.topology import load as load_topology


def _fail(exc: Exception) -> None:
    click.echo(f"error: {exc}", err=True)
    sys.exit(2)


def _state(name: str) -> LabState:
    state = load_state(name)
    if state is None:
        up = ", ".join(s.name for s in all_states()) or "none"
        raise LabError(f"lab {name!r} is not up (up: {up})")
    return state


@click.group()
def lab() -> None:
    """Labs on one Linux box: one network namespace per node, veth links, real FRR/BIRD.

    A lab is a folder under labs/ with a containerlab topology (topology.clab.yml) and
    lab.yaml (services and checks). NAME is the folder name, or a path to a lab folder or
    topology file. Needs root.
    """


lab.add_command(eapi_switch)


@lab.command("list")
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
def list_cmd(as_json: bool) -> None:
    """Labs that ship with dfagent, and whether each is up."""
    up = {s.name for s in all_states()}
    names = sorted(p.name for p in spec.LABS_DIR.iterdir() if (p / spec.TOPOLOGY_FILE).is_file())
    rows: list[dict[str, Any]] = []
    for n in names:
        try:
            description = spec.load(n).description
        except LabError as exc:
            description = f"(invalid: {str(exc).splitlines()[0]})"
        rows.append({"name": n, "up": n in up, "description": description})
    if as_json:
        click.echo(json.dumps(rows))
        return
    width = max((len(n) for n in names), default=0)
    for r in rows:
        click.echo(f"{r['name']:{width}}  {'up' if r['up'] else '- '}  {r['description']}")


@lab.command()
@click.argument("name", type=click.Choice([fabric_gen.LAB_NAME]))
@click.option("--spines", default=fabric_gen.FabricSize.spines, show_default=True)
@click.option("--leaves", default=fabric_gen.FabricSize.leaves, show_default=True)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Lab folder to write (default: the shipped labs/NAME, and containerlab/NAME.clab.yml).",
)
def generate(name: str, spines: int, leaves: int, out: Path | None) -> None:
    """Write a generated lab (topology, lab.yaml, node configs) at the size asked for."""
    size = fabric_gen.FabricSize(spines, leaves)
    if size.problems():
        raise click.UsageError("; ".join(size.problems()))
    target = out or spec.LABS_DIR / name
    written = fabric_gen.write(target, size)
    if out is None:
        clab = containerlab_files.CONTAINERLAB_DIR / f"{name}.clab.yml"
        clab.write_text(containerlab_files.render(target / spec.TOPOLOGY_FILE))
        written.append(clab)
    click.echo(f"{name}: {spines} spines x {leaves} leaves, {len(written)} files in {target}")


@lab.command()
@click.argument("ref")
@click.option(
    "--containerlab",
    is_flag=True,
    help="Validate for containerlab (any kind it knows) and compare with the runner's lab.",
)
def validate(ref: str, containerlab: bool) -> None:
    """Validate a topology (and lab.yaml) offline; every error with its path."""
    try:
        path = spec.resolve(ref)
        if containerlab:
            clab = load_topology(path, runnable=False)
            runner_topo = spec.LABS_DIR / clab.name / spec.TOPOLOGY_FILE
            drift = (
                containerlab_files.drift(load_topology(runner_topo), clab)
                if runner_topo.is_file()
                else []
            )
            if drift:
                raise LabError(f"{path}: drifted from {runner_topo}:\n  " + "\n  ".join(drift))
        elif (path.parent / spec.SPEC_FILE).is_file():
            spec.load(str(path))
        else:
            load_topology(path)
    except LabError as exc:
        _fail(exc)
    click.echo(f"{path}: valid")


@lab.command()
@click.argument("ref")
@click.option("--write", is_flag=True, help="Write containerlab/NAME.clab.yml instead of printing.")
def export(ref: str, write: bool) -> None:
    """The containerlab file for a runner lab (binds, images and Docker's default route fixed)."""
    try:
        path = spec.resolve(ref)
        text = containerlab_files.render(path)
    except LabError as exc:
        _fail(exc)
    if not write:
        click.echo(text, nl=False)
        return
    name = spec.load(str(path)).name
    target = containerlab_files.CONTAINERLAB_DIR / f"{name}.clab.yml"
    target.write_text(text)
    click.echo(f"wrote {target}")


@lab.command()
@click.argument("ref")
@click.option("--check", "then_check", is_flag=True, help="Run the lab's checks once up.")
def up(ref: str, then_check: bool) -> None:
    """Create the lab's namespaces, links, daemons and services."""
    start = time.monotonic()
    try:
        the_lab = spec.load(ref)
        state = runner.up(the_lab)
    except LabError as exc:
        _fail(exc)
    except KeyboardInterrupt:
        click.echo("interrupted: everything created was removed", err=True)
        sys.exit(130)
    click.echo(f"{the_lab.name}: up in {time.monotonic() - start:.1f}s")
    if then_check:
        sys.exit(_run_checks(state, the_lab, as_json=False))


def _run_checks(state: LabState, the_lab: spec.Lab, as_json: bool) -> int:
    def report(res: checks.Result) -> None:
        if as_json:
            click.echo(json.dumps(asdict(res)))
            return
        mark = "ok  " if res.ok else "FAIL"
        click.echo(f"{mark} {res.name} ({res.seconds:.1f}s)")
        for line in res.detail:
            click.echo(f"       {line}")

    results = checks.run_checks(state, the_lab, report)
    ok = len(results) == len(the_lab.checks) and all(r.ok for r in results)
    if not as_json:
        total = sum(r.seconds for r in results)
        verdict = "all checks hold" if ok else "checks FAILED"
        click.echo(f"{the_lab.name}: {verdict} ({total:.1f}s)")
        if not ok:
            click.echo(
                f"{the_lab.name}: daemon logs and configs in {state.run_dir} "
                f"(kept until `dfagent lab down {the_lab.name}`)"
            )
    return 0 if ok else 1


@lab.command()
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per check.")
def check(name: str, as_json: bool) -> None:
    """Run the lab's checks (retried until their deadlines); exit 0 only if all hold."""
    try:
        state = _state(name)
        the_lab = spec.load(state.topology)
    except LabError as exc:
        _fail(exc)
    sys.exit(_run_checks(state, the_lab, as_json))


@lab.command(
    "exec", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False}
)
@click.argument("name")
@click.argument("node")
@click.argument("cmd", nargs=-1, required=True, type=click.UNPROCESSED)
def exec_cmd(name: str, node: str, cmd: tuple[str, ...]) -> None:
    """Run CMD on NODE (after --). vtysh and birdc reach the node's own daemons."""
    args = list(cmd[1:] if cmd[0] == "--" else cmd)
    if not args:
        raise click.UsageError("give a command after --")
    try:
        argv = runner.exec_argv(_state(name), node, args)
    except LabError as exc:
        _fail(exc)
    os.execvp(argv[0], argv)


@lab.command()
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
def status(name: str | None, as_json: bool) -> None:
    """Labs that are up: nodes, namespaces, processes and whether each is alive."""
    try:
        states = [_state(name)] if name else all_states()
    except LabError as exc:
        _fail(exc)
    report: list[dict[str, Any]] = []
    for st in states:
        nodes = [asdict(n) for n in runner.status(st)]
        report.append({"name": st.name, "run_id": st.run_id, "status": st.status, "nodes": nodes})
    if as_json:
        click.echo(json.dumps(report))
        return
    if not report:
        click.echo("no lab is up")
    for r in report:
        click.echo(f"{r['name']} (run {r['run_id']}, {r['status']})")
        for n in r["nodes"]:
            procs = " ".join(f"{p}{'' if ok else '(dead)'}" for p, ok in n["processes"].items())
            ns_state = "" if n["present"] else " (namespace missing)"
            click.echo(f"  {n['node']:10} {n['netns']}{ns_state}  {procs}")


@lab.command()
@click.argument("name", required=False)
@click.option("--all", "everything", is_flag=True, help="Every lab, and any leftover namespace.")
def down(name: str | None, everything: bool) -> None:
    """Remove the lab's namespaces, daemons and files (also after a crashed `up`)."""
    if bool(name) == everything:
        raise click.UsageError("give a lab NAME or --all")
    try:
        if everything:
            gone = runner.down_all()
            click.echo(f"removed: {', '.join(gone) or 'nothing was up'}")
        elif not runner.down(str(name)):
            click.echo(f"lab {name!r} is not up")
        else:
            click.echo(f"{name}: down")
    except LabError as exc:
        _fail(exc)
