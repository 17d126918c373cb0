"""`dfagent bench agent` end to end at a small size: `dfagent run` in map mode takes 20,000
pins through the mirror path (each marks its conntrack entry), `flows --limit 100` answers
through the CLI and gRPC, and a SIGKILL + restart with 5,000 pins (map mode and kernel mode)
is ready, counts every pin again and loses none. The namespaces are removed."""

from __future__ import annotations

import subprocess
import sys

import pytest

from dfagent.bench.agent import AgentBench
from dfagent.lab.netns import list_netns

pytestmark = pytest.mark.lab


def test_bench_agent_small() -> None:
    bench = AgentBench(pins=20_000, restart_pins=5_000, calls=3, log=print)
    try:
        res = bench.run()
    finally:
        assert not set(bench.namespaces) & set(list_netns())
    fill = res["fill"]
    assert fill["sent"] == fill["pinned"] == 20_000, fill
    assert fill["marked_entries"] == 20_000, fill
    assert 20 < res["rss_0"]["rss_mb"] <= res["rss_full"]["peak_mb"] < 300, res
    for figure in ("flows_1k", "flows_full"):
        assert 0 < res[figure]["grpc"]["median_ms"] < 2_000, res[figure]
        assert res[figure]["grpc"]["median_ms"] < res[figure]["cli"]["median_ms"] < 20_000
    assert [r["mode"] for r in res["restart"]] == ["map", "kernel"]
    for r in res["restart"]:
        assert r["pins_before"] == r["pins_after"] == 5_000 and r["lost"] == 0, r
        assert 0 < r["ready_s"] <= r["counted_s"] < 30, r
        # the agent logged its ready line: the process and the first pass within ready_s
        assert r["first_pass_ms"] > 0 and r["before_first_pass_ms"] > 0, r
        assert (r["first_pass_ms"] + r["before_first_pass_ms"]) / 1000 < r["ready_s"] + 0.05, r
        # its own CPU until then: some, and no more than two cores' worth of the process's time
        assert 0 < r["ready_cpu_ms"] <= 2 * (r["first_pass_ms"] + r["before_first_pass_ms"]), r
    (m,) = [r for r in res["restart"] if r["mode"] == "map"]
    assert m["map_elements_before"] == m["map_elements_after"] == 5_000, m


def test_bench_agent_rejects_bad_sizes() -> None:
    p = subprocess.run(
        [sys.executable, "-m", "dfagent.cli.main", "bench", "agent", "--pins", "10"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert "--pins" in p.stderr and "1000" in p.stderr, p.stderr
