"""A failed lab keeps its run folder (daemon logs, configs) and names it; `down` removes it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dfagent.lab import netns, runner, spec
from dfagent.lab.errors import LabError
from dfagent.lab.state import load_state
from tests.lab.lab_runs import lab_run

pytestmark = pytest.mark.lab
DFAGENT = [sys.executable, "-m", "dfagent.cli.main"]
NAME = "keeplogs"


def _lab(tmp_path: Path, services: list, checks: list, b_exec: list | None = None) -> Path:
    (tmp_path / "a").mkdir(parents=True)
    (tmp_path / "a" / "frr.conf").write_text("frr defaults datacenter\nhostname a\n")
    topo = {"name": NAME, "topology": {"nodes": {
        "a": {"kind": "linux", "binds": ["a/frr.conf:/etc/frr/frr.conf"]},
        "b": {"kind": "linux", **({"exec": b_exec} if b_exec else {})}},
        "links": [{"endpoints": ["a:eth1", "b:eth1"]}]}}  # fmt: skip
    (tmp_path / spec.TOPOLOGY_FILE).write_text(yaml.safe_dump(topo))
    (tmp_path / spec.SPEC_FILE).write_text(yaml.safe_dump({"services": services, "checks": checks}))
    return tmp_path


@pytest.fixture
def clean():
    runner.down(NAME)
    yield
    runner.down(NAME)


def test_failed_up_keeps_logs_until_down(clean, tmp_path):
    # the service exits at once: bring-up fails after FRR started on node a
    lab = spec.load(str(_lab(tmp_path, [{"node": "b", "name": "dies", "cmd": ["false"]}], [])))
    with pytest.raises(LabError) as err:
        runner.up(lab, log=False)
    state = load_state(NAME)
    assert state is not None and state.status == "failed"
    assert state.run_dir in str(err.value) and "exited at once" in str(err.value)
    assert (Path(state.run_dir) / "a" / "frr" / "zebra.log").is_file()
    assert not [ns for ns in state.namespaces.values() if ns in netns.list_netns()]
    assert runner.down(NAME)
    assert not Path(state.run_dir).exists() and load_state(NAME) is None


def test_failed_check_names_the_run_folder(clean, tmp_path):
    check = {"name": "never holds", "exec": {"node": "b", "cmd": "false"}, "timeout": 0.5}
    lab_dir = _lab(tmp_path, [], [check])
    res = subprocess.run([*DFAGENT, "lab", "up", str(lab_dir), "--check"],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    state = load_state(NAME)
    assert state is not None
    assert res.returncode == 1 and f"daemon logs and configs in {state.run_dir}" in res.stdout
    assert (Path(state.run_dir) / "a" / "frr" / "bgpd.log").is_file()
    down = subprocess.run([*DFAGENT, "lab", "down", NAME], capture_output=True, text=True)
    assert down.returncode == 0 and not Path(state.run_dir).exists()


def test_failed_up_on_the_command_line_names_the_kept_folder(clean, tmp_path):
    # an exec line fails: certain (a service that exits may outlive the runner's first look)
    lab_dir = _lab(tmp_path, [], [], b_exec=["ip link set nosuchdev up"])
    res = subprocess.run([*DFAGENT, "lab", "up", str(lab_dir)],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    state = load_state(NAME)
    assert state is not None and state.status == "failed"
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert f"daemon logs and configs kept in {state.run_dir}" in res.stderr, res.stderr
    assert "nosuchdev" in res.stderr and Path(state.run_dir).is_dir()
    assert not [ns for ns in state.namespaces.values() if ns in netns.list_netns()]
    down = subprocess.run([*DFAGENT, "lab", "down", NAME], capture_output=True, text=True)
    assert down.returncode == 0 and not Path(state.run_dir).exists()


def test_lab_run_keeps_the_run_folder_of_a_failed_test_and_names_it(clean, tmp_path):
    lab_dir = _lab(tmp_path / "lab", [], [])
    keep = tmp_path / "keep"
    keep.mkdir()
    with pytest.raises(AssertionError) as err, lab_run(str(lab_dir), keep) as run:
        run_dir = Path(run.state.run_dir)
        assert (run_dir / "a" / "frr" / "zebra.log").is_file()
        raise AssertionError("failed on purpose")
    kept = keep / "run"
    assert any(str(kept) in note for note in getattr(err.value, "__notes__", [])), err.value
    assert (kept / "a" / "frr" / "zebra.log").is_file()
    assert (kept / "a" / "frr" / "frr.conf").is_file()
    assert not run_dir.exists() and load_state(NAME) is None  # the lab itself is down
    shutil.rmtree(kept)


def test_lab_run_whose_bring_up_fails_names_the_kept_folder(clean, tmp_path):
    lab_dir = _lab(tmp_path / "lab", [], [], b_exec=["ip link set nosuchdev up"])
    with pytest.raises(LabError) as err, lab_run(str(lab_dir), tmp_path):
        pass
    state = load_state(NAME)
    assert state is not None and state.run_dir in str(err.value)
    assert "nosuchdev" in str(err.value) and Path(state.run_dir).is_dir()
    assert runner.down(NAME) and not Path(state.run_dir).exists()
