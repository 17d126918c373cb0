"""The hypervisor-l3 lab on real namespaces and BIRD 2: proxy-ARP VMs, two reflectors,
ADD-PATH anycast ECMP, a VM moved between hypervisors."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from dfagent.lab import runner
from tests.lab.lab_runs import failures, lab_run

pytestmark = pytest.mark.lab
ANYCAST = "203.0.113.10"


def test_hypervisor_l3_holds_and_its_checks_can_fail(tmp_path):
    with lab_run("hypervisor-l3", tmp_path) as run:
        results, seconds = run.check_all()
        assert all(r.ok for r in results) and len(results) == len(run.lab.checks), failures(results)
        print(f"hypervisor-l3: up {run.up_seconds:.1f}s, checks {seconds:.1f}s")
        # ADD-PATH is what gives hv3 both hypervisors: reflectors that send only their best
        # path (each picks hv1, the lower router id) leave hv3 one hypervisor, on two fabrics.
        for rr in ("rr1", "rr2"):
            conf = Path(run.state.run_dir) / rr / "bird.conf"
            conf.write_text(conf.read_text().replace("add paths tx;", ""))
            reconf = runner.exec_argv(run.state, rr, ["birdc", "configure"])
            out = subprocess.run(reconf, capture_output=True, text=True).stdout
            assert "Reconfigur" in out, out  # "Reconfigured", or "… in progress"
        # The reflectors restart their sessions to drop the capability, and re-learn hv1 and hv2 in
        # whichever order their sessions come up: hv3 may briefly hold hv2 alone, or hv1 from
        # one reflector and hv2 from the other. Wait for the settled best path: hv1 alone, and
        # still hv1 alone 3 s later (each reflector sends one path now).
        assert _wait_anycast(run, lambda hvs: hvs == {"hv1"}, timeout=40, hold=3.0) == {"hv1"}
        # Both reflectors gone: hv3 loses the anycast route, and the lab's check says so.
        runner.stop_daemon(run.state, "rr1", "bird")
        runner.stop_daemon(run.state, "rr2", "bird")
        assert _wait_anycast(run, lambda hvs: not hvs) == set()
        res = run.step(
            "hv3 still has the anycast /32 via hv1 and hv2, over fab2 alone (rr2 still ADD-PATHs)",
            timeout=2,
        )
        assert not res.ok, res


def _wait_anycast(run, done, timeout: float = 20, hold: float = 0.0) -> set[str]:
    """Hypervisors (by their fabric addresses' last octet) in hv3's anycast route, once
    `done(them)` holds, and has held at every poll for `hold` seconds."""
    argv = runner.exec_argv(run.state, "hv3", ["ip", "-j", "route", "show", ANYCAST])
    deadline = time.monotonic() + timeout
    since: float | None = None
    while True:
        routes = json.loads(subprocess.run(argv, capture_output=True, text=True).stdout or "[]")
        gws = {nh["gateway"] for r in routes for nh in r.get("nexthops", [r]) if "gateway" in nh}
        hvs = {f"hv{int(g.rsplit('.', 1)[1]) - 10}" for g in gws}
        now = time.monotonic()
        if not done(hvs):
            since = None
        elif since is None:
            since = now
        if since is not None and now - since >= hold:
            return hvs
        assert now < deadline, f"hv3's anycast route still via {sorted(gws)}"
        time.sleep(0.2)
