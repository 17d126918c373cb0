"""The unnumbered-fabric lab on real namespaces and FRR: BGP unnumbered, EVPN, VXLAN."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from dfagent.lab import runner
from tests.lab.lab_runs import failures, lab_run

pytestmark = pytest.mark.lab
DFAGENT = [sys.executable, "-m", "dfagent.cli.main"]


def test_default_fabric_holds_and_its_checks_can_fail(tmp_path):
    with lab_run("unnumbered-fabric", tmp_path) as run:
        results, seconds = run.check_all()
        assert all(r.ok for r in results) and len(results) == len(run.lab.checks), failures(results)
        print(f"unnumbered-fabric 2x3: up {run.up_seconds:.1f}s, checks {seconds:.1f}s")
        # The checks see a broken overlay: l3's VTEP down cuts h3 off the segment …
        ns = run.state.namespaces["l3"]
        subprocess.run(["ip", "-n", ns, "link", "set", "vxlan100", "down"], check=True)
        res = run.step("hosts still ping each other", timeout=4)
        assert not res.ok and any("cannot ping 172.16.0.3" in d for d in res.detail), res
        # … and a leaf whose uplink is down: one path fewer than there are live spines
        subprocess.run(["ip", "-n", ns, "link", "set", "swp2", "down"], check=True)
        res = run.step(
            "every leaf reaches every loopback, one ECMP path per spine, via inet6 link-local",
            timeout=4,
        )
        assert not res.ok and any("l3:" in d for d in res.detail), res


def test_a_regenerated_bigger_fabric_comes_up(tmp_path):
    out = tmp_path / "fabric"
    gen = subprocess.run(
        [*DFAGENT, "lab", "generate", "unnumbered-fabric", "--spines", "3", "--leaves", "4",
         "--out", str(out)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "3 spines x 4 leaves" in gen.stdout
    with lab_run(str(out), tmp_path) as run:
        results, seconds = run.check_all()
        assert all(r.ok for r in results), failures(results)
        print(f"unnumbered-fabric 3x4: up {run.up_seconds:.1f}s, checks {seconds:.1f}s")
    assert not runner.down("unnumbered-fabric")  # already gone
    shutil.rmtree(out)
