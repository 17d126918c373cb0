"""`dfagent bench pcc --modes ecmp,eos` at CI size: eos runs on the resilient-ecmp-eos lab,
whose lb (kind arista_ceos) is the eAPI test switch: its DirectFlow flows steer lb's
forwarding and its monitor sessions send the SYNs each member carries in GRE to the VIP; an
agent with the EOS backend on each server receives them and pins over eAPI. Plain ECMP
breaks connections in the same run; eos breaks none, and every connection has its flow."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.lab
N, FRESH = 60, 20


def test_bench_pcc_eos_breaks_nothing_where_ecmp_breaks_connections() -> None:
    argv = [sys.executable, "-m", "dfagent.cli.main", "bench", "pcc", "-n", str(N),
            "--fresh", str(FRESH), "--modes", "ecmp,eos", "--json"]  # fmt: skip
    r = subprocess.run(argv, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr
    print(r.stderr)
    result = json.loads(r.stdout)
    ecmp, eos = result["modes"]["ecmp"], result["modes"]["eos"]
    assert (result["lab"], result["eos_lab"]) == ("resilient-ecmp", "resilient-ecmp-eos")
    assert ecmp["opened"] == eos["opened"] == N
    assert ecmp["broken_total"] > 0, "plain ECMP broke nothing: the benchmark measures nothing"
    assert eos["broken_total"] == 0, eos["events"]
    assert all(g["broken"] == 0 for g in eos["groups"].values()), eos["groups"]
    assert eos["groups"]["during"]["opened"] > 0, eos["groups"]
    assert eos["events"][-1]["groups"]["initial"]["alive"] == N
    # a DirectFlow flow steers lb for every connection made, held from the start, opened
    # during or after a change (the switch's mirror may lose a SYN or two on a loaded machine)
    made = sum(g["opened"] for g in eos["groups"].values())
    assert made - 4 <= eos["pins"] <= made
    by_agent = eos["pinned_by_agent"]
    assert set(by_agent) == {"s1", "s2", "s3", "s4"}
    assert sum(by_agent.values()) == eos["pins"]
    by_event = {e["event"]: e["fresh"] for e in eos["events"]}
    assert "s1" not in by_event["drain s1"] and "s4" in by_event["s4 announces"]
    assert "s2" not in by_event["s2 BGP down"] and "s1" in by_event["undrain s1"]


def test_bench_pcc_eos_needs_the_symmetric_topology() -> None:
    argv = [sys.executable, "-m", "dfagent.cli.main", "bench", "pcc", "-n", "2", "--modes",
            "eos", "--topology", "asymmetric"]  # fmt: skip
    r = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.strip() == (
        "error: mode eos runs on the symmetric topology only"
    ), r.stderr
