"""A failed lab keeps its run folder (daemon logs, configs) and names it; `down` removes it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dfagent.lab import netns, runner, spec
from dfagent.lab.errors import LabError
from dfagent.lab.state import load_state

pytestmark = pytest.mark.lab
DFAGENT = [sys.executable, "-m", "dfagent.cli.main"]
NAME = "keeplogs"


def _lab(tmp_path: Path, services: list, checks: list) -> Path:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "frr.conf").write_text("frr defaults datacenter\nhostname a\n")
    topo = {"name": NAME, "topology": {"nodes": {
        "a": {"kind": "linux", "binds": ["a/frr.conf:/etc/frr/frr.conf"]},
        "b": {"kind": "linux"}}, "links": [{"endpoints": ["a:eth1", "b:eth1"]}]}}  # fmt: skip
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
