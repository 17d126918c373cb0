"""The egress gateway policies on real namespaces, FRR and NAT: equal ECMP is
tests/lab/test_egress_ecmp.py; this is active/backup (r2's default has the worse MED)."""

from __future__ import annotations

import pytest

from dfagent.lab import runner
from tests.lab.lab_runs import failures, lab_run

pytestmark = pytest.mark.lab


def test_active_backup_fails_over_and_back(tmp_path):
    with lab_run("egress-ecmp-active-backup", tmp_path) as run:
        results, seconds = run.check_all()
        assert all(r.ok for r in results) and len(results) == len(run.lab.checks), failures(results)
        print(f"egress-ecmp-active-backup: up {run.up_seconds:.1f}s, checks {seconds:.1f}s")
        # The checks notice when the backup takes traffic while the active gateway is there.
        runner.stop_daemon(run.state, "r1", "bgpd")
        assert run.step("host fails over to r2's default").ok
        res = run.step("host is back on r1 alone", timeout=3)
        assert not res.ok and any("10.10.0.2" in d for d in res.detail), res
