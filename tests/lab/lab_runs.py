"""Bring a shipped or generated lab up for a test and always take it down again; when the
test fails, copy the run folder (daemon logs, configs as run) to the test's tmp_path first
and name the copy on the failure."""

from __future__ import annotations

import os
import shutil
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from dfagent.lab import checks, netns, runner, spec
from dfagent.lab.state import LabState


@dataclass
class Run:
    lab: spec.Lab
    state: LabState
    up_seconds: float

    def check_all(self) -> tuple[list[checks.Result], float]:
        t0 = time.monotonic()
        results = checks.run_checks(self.state, self.lab)
        return results, time.monotonic() - t0

    def step(self, name: str, timeout: float | None = None) -> checks.Result:
        """Run one of the lab's steps again by name (with a shorter deadline if given)."""
        step = next(s for s in self.lab.checks if s.name == name)
        if timeout is not None:
            step = spec.Step(step.name, step.kind, step.node, step.args, timeout)
        return checks.run_step(self.state, self.lab, step)


@contextmanager
def lab_run(ref: str, keep_logs_in: Path) -> Iterator[Run]:
    """The lab up for the body, always down after it. A failed bring-up raises the runner's
    error, which names the run folder it kept (`down` of the next run removes it); a failed
    body gets a copy of the run folder in `keep_logs_in` (the lab itself is removed: nothing
    of it lingers), named in a note on the failure."""
    the_lab = spec.load(ref)
    runner.down(the_lab.name)  # a previous run of this test left up
    t0 = time.monotonic()
    state = runner.up(the_lab, log=False)
    try:
        yield Run(the_lab, state, time.monotonic() - t0)
    except BaseException as exc:
        kept = keep_run_folder(state, keep_logs_in)
        if kept is not None:
            exc.add_note(f"{the_lab.name}: daemon logs and configs of the failed run: {kept}")
        raise
    finally:
        runner.down(the_lab.name)
        present = set(netns.list_netns())
        assert not [ns for ns in state.namespaces.values() if ns in present]
        assert not Path(state.run_dir).exists()


def keep_run_folder(state: LabState, keep_logs_in: Path) -> Path | None:
    """Copy the run folder (daemon logs, configs as run; not sockets) to keep_logs_in/run."""
    if not Path(state.run_dir).is_dir():
        return None
    target = keep_logs_in / "run"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(state.run_dir, target, ignore=_sockets)
    print(f"daemon logs of the failed run: {target}")
    return target


def _sockets(directory: str, names: list[str]) -> list[str]:
    return [n for n in names if stat.S_ISSOCK(os.lstat(os.path.join(directory, n)).st_mode)]


def failures(results: list[checks.Result]) -> str:
    return "\n".join(f"{r.name}: {r.detail}" for r in results if not r.ok)
