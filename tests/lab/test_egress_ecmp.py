"""The egress-ecmp lab on real namespaces, FRR and TCP, driven through the CLI as users do."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dfagent.lab import netns
from dfagent.lab.state import load_state

pytestmark = pytest.mark.lab
DFAGENT = [sys.executable, "-m", "dfagent.cli.main"]
LAB = "egress-ecmp"


def dfagent(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    proc = subprocess.run([*DFAGENT, *args], capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"dfagent {' '.join(args)} → {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def processes_under(path: str) -> list[str]:
    """Live processes whose command line mentions `path` (zombies don't count)."""
    out = subprocess.run(["pgrep", "-a", "-f", path], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if line and netns.alive(int(line.split()[0]))]


def wait_gone(path: str, timeout: float = 5) -> list[str]:
    deadline = time.monotonic() + timeout
    while (left := processes_under(path)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


@pytest.fixture
def clean():
    dfagent("lab", "down", LAB, check=False)
    yield
    dfagent("lab", "down", LAB, check=False)


def test_up_check_down_leaves_nothing(clean):
    t0 = time.monotonic()
    dfagent("lab", "up", LAB)
    state = load_state(LAB)
    assert state is not None and state.status == "up"
    check = dfagent("lab", "check", LAB, "--json", check=False)
    results = [json.loads(line) for line in check.stdout.splitlines()]
    assert check.returncode == 0, check.stdout + check.stderr
    assert len(results) == 8 and all(r["ok"] for r in results)
    print(f"egress-ecmp up + check: {time.monotonic() - t0:.1f}s")

    status = json.loads(dfagent("lab", "status", LAB, "--json").stdout)[0]
    host = next(n for n in status["nodes"] if n["node"] == "host")
    assert host["processes"] == {"zebra": True, "bgpd": True, "staticd": True}

    out = dfagent("lab", "exec", LAB, "host", "--", "ip", "-j", "route", "show", "default").stdout
    gateways = sorted(nh["gateway"] for nh in json.loads(out)[0]["nexthops"])
    assert gateways == ["10.10.0.1", "10.10.0.2"]

    again = dfagent("lab", "up", LAB, check=False)
    assert again.returncode == 2 and "already up" in again.stderr

    dfagent("lab", "down", LAB)
    present = netns.list_netns()
    assert not [ns for ns in state.namespaces.values() if ns in present]
    assert wait_gone(state.run_dir) == []
    assert not Path(state.run_dir).exists()
    assert load_state(LAB) is None


def test_check_fails_and_says_why_when_a_gateway_is_gone(clean):
    dfagent("lab", "up", LAB)
    state = load_state(LAB)
    assert state is not None
    # Take r2's LAN link down: the "two next hops" check can no longer hold.
    dfagent("lab", "exec", LAB, "r2", "--", "ip", "link", "set", "eth1", "down")
    check = dfagent("lab", "check", LAB, check=False, timeout=180)
    assert check.returncode == 1
    assert "FAIL" in check.stdout and "seen:" in check.stdout


def test_killed_runner_then_down_all_leaves_nothing(clean):
    proc = subprocess.Popen([*DFAGENT, "lab", "up", LAB], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    # Kill it hard once namespaces exist and daemons are starting.
    for line in proc.stdout:
        if "links" in line:
            break
    time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    state = load_state(LAB)
    assert state is not None and state.status == "starting"
    assert any(ns in netns.list_netns() for ns in state.namespaces.values())
    dfagent("lab", "down", "--all")
    present = netns.list_netns()
    assert not [ns for ns in present if ns.startswith("dfl-")]
    assert wait_gone(state.run_dir) == []
    assert load_state(LAB) is None


def test_sigterm_during_up_cleans_up(clean):
    proc = subprocess.Popen(
        [*DFAGENT, "lab", "up", LAB], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if "namespaces" in line:
            break
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert load_state(LAB) is None
    assert not [ns for ns in netns.list_netns() if ns.startswith("dfl-")]


def test_bad_frr_line_is_rejected_before_anything_is_created(clean, tmp_path):
    lab_dir = tmp_path / "badlab"
    shutil.copytree(Path(__file__).resolve().parents[2] / "labs" / LAB, lab_dir)
    conf = lab_dir / "r1" / "frr.conf"
    conf.write_text(conf.read_text().replace("remote-as external", "remote-as externall"))
    before = set(netns.list_netns())
    res = dfagent("lab", "up", str(lab_dir), check=False)
    assert res.returncode == 2
    assert "r1:" in res.stderr and "remote-as externall" in res.stderr
    assert set(netns.list_netns()) == before


def test_not_root_is_a_clear_error():
    if os.geteuid() != 0:
        pytest.skip("runs as root in CI; checks the refusal as nobody")
    res = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *DFAGENT, "lab", "up", LAB],
        capture_output=True,
        text=True,
        env={**os.environ, "HOME": "/tmp"},
    )
    assert res.returncode == 2 and "need root" in res.stderr
