"""`dfagent bench restart` at a small size: 60 held connections and 5,000 synthetic pins;
the agent is SIGKILLed right after a drain of s1 and started again after s2's BGP session
went down. Kernel and map mode: 0 broken, 0 pins lost (entries and map elements), ready,
the next-hop maps on the new set; plain ECMP breaks connections (the control)."""

from __future__ import annotations

import json

import pytest

from dfagent.bench.restart import RestartBench
from dfagent.lab.netns import list_netns

pytestmark = pytest.mark.lab


def test_bench_restart_small() -> None:
    bench = RestartBench(60, pins=5_000, log=print)
    try:
        result = bench.run(["ecmp", "kernel", "map"])
    finally:
        assert bench.namespaces and not set(bench.namespaces) & set(list_netns())
    modes = result["modes"]
    print(json.dumps(modes))
    assert modes["ecmp"]["opened"] == 60 and modes["ecmp"]["broken"] > 0
    for mode in ("kernel", "map"):
        r = modes[mode]
        assert r["opened"] == 60 and r["broken"] == 0, (mode, r)
        # every synthetic pin and every held connection carried a mark before the kill
        assert sum(r["marked_before"].values()) == 5_060 and r["lost"] == 0, (mode, r)
        assert r["marked_after"] == r["marked_before"], (mode, r)
        assert 0 < r["ready_s"] < 30 and r["marks_match_s"] is not None, (mode, r)
        assert r["first_pass_ms"] > 0 and r["before_first_pass_ms"] > 0, (mode, r)
    assert modes["map"]["elements_before"] == 5_060 and modes["map"]["elements_lost"] == 0
