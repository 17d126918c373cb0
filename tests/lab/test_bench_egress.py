"""`dfagent bench pcc --lab egress-ecmp` on real namespaces: the active/backup failover
breaks every NATed connection without pinning and none with kernel mode on the host (the
equal-ECMP drain is tests/lab/test_egress_pinning.py)."""

from __future__ import annotations

import pytest

from dfagent.bench.egress import POLICIES, EgressBench

pytestmark = pytest.mark.lab
ACTIVE_BACKUP = next(p for p in POLICIES if p.name == "active-backup")


@pytest.mark.parametrize("mode", ["ecmp", "kernel"])
def test_active_backup_failover(mode):
    res = EgressBench(connections=40, fresh=10, log=lambda m: None).run_mode(ACTIVE_BACKUP, mode)
    assert res["opened"] == 40 and res["by_gateway"] == {"r1": 40}, res
    stops, starts = res["events"]
    assert stops["fresh"] == {"r2": 10} and starts["fresh"] == {"r1": 10}, res
    if mode == "ecmp":
        assert stops["broken"] == 40 and stops["broken_from"] == {"r1": 40}, res
    else:
        assert res["broken_total"] == 0 and starts["alive"] == 40, res
