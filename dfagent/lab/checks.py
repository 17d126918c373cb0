"""Run a lab's checks: each retried until it holds or its deadline passes, never bare sleeps.

A failed check reports what was expected and what was last seen.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from dfagent.lab import runner
from dfagent.lab.errors import LabError
from dfagent.lab.jsoncmp import json_diff
from dfagent.lab.spec import Lab, Step, resolve_function
from dfagent.lab.state import LabState

POLL = 0.25


@dataclass
class Result:
    name: str
    ok: bool
    seconds: float
    detail: list[str] = field(default_factory=list)


class RunsCommands(Protocol):
    """What a check that reads command output needs of its context (the unit tests give
    canned outputs)."""

    def run(self, node: str, cmd: str | list[str], timeout: float = 30) -> str: ...


class ReadsLab(RunsCommands, Protocol):
    """A check that also reads the lab's topology."""

    @property
    def lab(self) -> Lab: ...


@dataclass
class StepContext:
    """What a `call`/`do` function gets: the running lab, and a way to run commands on it."""

    state: LabState
    lab: Lab

    def run(self, node: str, cmd: str | list[str], timeout: float = 30) -> str:
        """stdout of `cmd` on `node` (vtysh/birdc reach its daemons); LabError if it fails."""
        return run_on(self.state, node, cmd, timeout)

    def ns(self, node: str) -> str:
        return self.state.namespaces[node]


def run_on(state: LabState, node: str, cmd: str | list[str], timeout: float = 30) -> str:
    argv = runner.exec_argv(state, node, shlex.split(cmd) if isinstance(cmd, str) else cmd)
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise LabError(f"exit {proc.returncode}: {(proc.stderr or proc.stdout).strip()[:300]}")
    return proc.stdout


def _check_cmd(state: LabState, step: Step) -> list[str]:
    out = run_on(state, step.node, step.args["cmd"])
    try:
        seen = json.loads(out)
    except json.JSONDecodeError:
        return [f"output is not JSON: {out[:200]!r}"]
    diff = json_diff(step.args["expect"], seen, step.args["exact_lists"])
    if diff:
        diff.append(f"seen: {json.dumps(seen)[:600]}")
    return diff


def _check_spread(state: LabState, step: Step) -> list[str]:
    a = step.args
    cmd = [sys.executable, "-m", "dfagent.lab.probe", str(a["addr"]), str(a["port"])]
    cmd += ["--count", str(a.get("connections", 16))]
    seen = json.loads(run_on(state, step.node, cmd, timeout=120))
    answers: dict[str, int] = seen["answers"]
    problems = []
    if seen["errors"]:
        problems.append(f"{seen['errors']} connection(s) failed")
    if len(answers) < int(a.get("min_distinct", 1)):
        problems.append(f"expected >= {a['min_distinct']} distinct answers")
    if len(answers) > int(a.get("max_distinct", len(answers))):
        problems.append(f"expected <= {a['max_distinct']} distinct answers")
    for want in a.get("expect_answers", []):
        if want not in answers:
            problems.append(f"no connection answered by {want}")
    if problems:
        problems.append(f"seen: {answers}")
    return problems


def _check_exec(state: LabState, step: Step) -> list[str]:
    """The command exits 0 (and prints `contains`, if given). No shell: vtysh and birdc
    reach the node's own daemons."""
    out = run_on(state, step.node, step.args["cmd"])
    want = step.args.get("contains")
    if want is not None and str(want) not in out:
        return [f"output lacks {want!r}", f"seen: {out.strip()[:600]}"]
    return []


def _call(state: LabState, lab: Lab, step: Step) -> list[str]:
    fn = resolve_function(step.args["fn"])
    problems = fn(StepContext(state, lab), **step.args["args"])
    return [str(p) for p in problems or []]


def _action(state: LabState, lab: Lab, step: Step) -> list[str]:
    if step.kind == "do":
        return _call(state, lab, step)
    daemon = step.args.get("daemon", "")
    if step.kind == "stop":
        runner.stop_daemon(state, step.node, daemon)
    else:
        runner.start_daemon(state, lab.topology.nodes[step.node], daemon)
    return []


CHECKERS: dict[str, Callable[[LabState, Step], list[str]]] = {
    "cmd": _check_cmd,
    "spread": _check_spread,
    "exec": _check_exec,
}


def run_step(state: LabState, lab: Lab, step: Step) -> Result:
    start = time.monotonic()
    if step.kind in ("stop", "start", "do"):
        try:
            problems = _action(state, lab, step)
        except LabError as exc:
            problems = [str(exc)]
        return Result(step.name, not problems, time.monotonic() - start, problems)
    deadline = start + step.timeout
    while True:
        try:
            if step.kind == "call":
                problems = _call(state, lab, step)
            else:
                problems = CHECKERS[step.kind](state, step)
        except (LabError, subprocess.TimeoutExpired, json.JSONDecodeError, KeyError) as exc:
            problems = [f"{type(exc).__name__}: {exc}"]
        if not problems or time.monotonic() >= deadline:
            return Result(step.name, not problems, time.monotonic() - start, problems)
        time.sleep(POLL)


def run_checks(
    state: LabState, lab: Lab, report: Callable[[Result], Any] | None = None
) -> list[Result]:
    """Run every check in order; stop at the first failure (later ones depend on it)."""
    results = []
    for step in lab.checks:
        res = run_step(state, lab, step)
        results.append(res)
        if report:
            report(res)
        if not res.ok:
            break
    return results
