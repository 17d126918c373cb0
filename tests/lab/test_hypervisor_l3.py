"""The hypervisor-l3 lab on real namespaces and BIRD 2: proxy-ARP VMs, two reflectors,
ADD-PATH anycast ECMP, a VM moved between hypervisors."""

from __future__ import annotations

import json
import subprocess
import time

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
        # Both reflectors gone: hv3 loses the anycast route, and the check says so.
        runner.stop_daemon(run.state, "rr1", "bird")
        runner.stop_daemon(run.state, "rr2", "bird")
        argv = runner.exec_argv(run.state, "hv3", ["ip", "-j", "route", "show", ANYCAST])
        deadline = time.monotonic() + 15
        while json.loads(subprocess.run(argv, capture_output=True, text=True).stdout or "[]"):
            assert time.monotonic() < deadline, "hv3 kept the anycast route with no reflector"
            time.sleep(0.2)
        res = run.step(
            "hv3 still has the anycast /32 via hv1 and hv2, over fab2 alone (rr2 still ADD-PATHs)",
            timeout=5,
        )
        assert not res.ok, res
