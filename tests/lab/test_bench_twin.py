"""`dfagent bench twin` at a small size, and the twin-lb lab's conntrackd life cycle.

Bench: 40 held connections through up → lb1/lb2; lb1 dies while s1 drains, then boots back
while s4 is added. Kernel mode (both lbs pinning, conntrackd sharing the marks): 0 broken;
plain ECMP breaks connections (the control)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dfagent.bench.twin import TwinBench
from dfagent.lab import runner, spec
from dfagent.lab.netns import alive, list_netns
from dfagent.lab.state import load_state

pytestmark = pytest.mark.lab


def test_bench_twin_small() -> None:
    bench = TwinBench(40, log=print)
    try:
        result = bench.run(["ecmp", "kernel"])
    finally:
        assert bench.namespaces and not set(bench.namespaces) & set(list_netns())
        # two per lab (ecmp stops its pair), lb1's again after its reboot: none outlives
        assert len(bench.conntrackd_pids) == 5
        assert not [p for p in bench.conntrackd_pids if alive(p)]
    modes = result["modes"]
    print(json.dumps(modes))
    ecmp, kernel = modes["ecmp"], modes["kernel"]
    assert ecmp["opened"] == 40 and ecmp["broken_total"] > 0, ecmp
    assert kernel["opened"] == 40 and kernel["broken_total"] == 0, kernel
    assert [e["broken"] for e in kernel["events"]] == [0, 0], kernel
    # each lb held every connection's entry with its mark: its own and the peer's
    for lb in ("lb1", "lb2"):
        assert kernel["sync"][lb]["marked_entries"] >= 40, kernel["sync"]
    assert kernel["sync"]["lb1"]["sent_created"] + kernel["sync"]["lb2"]["sent_created"] >= 40
    # the rebooted lb1 got every live connection's entry back from lb2
    assert kernel["resync"]["entries"] >= kernel["events"][0]["alive"], kernel["resync"]


def _conntrackd_in(namespaces: list[str]) -> list[int]:
    """pids of conntrackd processes running in any of ``namespaces``."""
    found = []
    for ns in namespaces:
        out = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout
        for pid in map(int, out.split()):
            try:
                if Path(f"/proc/{pid}/comm").read_text().strip() == "conntrackd":
                    found.append(pid)
            except OSError:
                pass
    return found


def test_lab_down_leaves_no_conntrackd() -> None:
    """Each lb's conntrackd runs in its namespace with config, lock and socket in the run
    folder; `lab down` ends both, also after the runner that brought the lab up was killed
    and after a conntrackd crashed (its stale lock does not stop a restart)."""
    lab = spec.load("twin-lb")
    runner.down(lab.name)
    env = {**os.environ}
    up = subprocess.Popen(
        [sys.executable, "-m", "dfagent.cli.main", "lab", "up", "twin-lb"], env=env,
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    pids: list[int] = []
    namespaces: list[str] = []
    run_dir = Path("/nonexistent")
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            st = load_state(lab.name)
            pids = [p.pid for p in (st.processes if st else []) if p.name == "conntrackd"]
            if len(pids) == 2 and all(pids):
                break
            time.sleep(0.1)
        assert len(pids) == 2 and all(alive(p) for p in pids), pids
        up.kill()  # the runner dies; the lab (and its conntrackds) stay behind
        up.wait()
        st = load_state(lab.name)
        assert st is not None
        run_dir = Path(st.run_dir)
        namespaces = list(st.namespaces.values())
        assert sorted(_conntrackd_in(namespaces)) == sorted(pids)
        for lb in ("lb1", "lb2"):
            conf = (run_dir / lb / "conntrackd.conf").read_text()
            # per-instance paths, never the global /var/lock, /var/run defaults
            assert re.search(rf"LockFile {re.escape(str(run_dir / lb))}/conntrackd\.lock", conf)
            assert re.search(rf"Path {re.escape(str(run_dir / lb))}/conntrackd\.ctl", conf)
            assert (run_dir / lb / "conntrackd.lock").exists()
        # a crash of lb1's conntrackd leaves its lock; the lab starts it again regardless
        os.kill(pids[0], 9)
        time.sleep(0.3)
        assert (run_dir / "lb1" / "conntrackd.lock").exists()
        runner.restart_service(st, lab, "lb1", "conntrackd")
        again = st.process("lb1", "conntrackd")
        assert again is not None and again.pid and again.pid != pids[0]
        time.sleep(0.5)
        assert alive(again.pid), (run_dir / "lb1" / "conntrackd.log").read_text()[-500:]
        pids.append(again.pid)
    finally:
        assert runner.down(lab.name)
    assert not [p for p in pids if alive(p)]
    assert not set(namespaces) & set(list_netns())
    assert not _conntrackd_in(namespaces) and not run_dir.exists()
