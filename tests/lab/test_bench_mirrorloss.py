"""`dfagent bench mirrorloss` at a small size on the real resilient-ecmp lab: with a fifth of
the mirrored SYNs lost, map mode leaves those flows unpinned and the events break them; the
SYN-ACK second chance pins every one (0 broken), and so does the kernel's record (--record);
plain ECMP breaks connections too."""

from __future__ import annotations

import pytest

from dfagent.bench.mirrorloss import MirrorLossBench, format_table

pytestmark = [pytest.mark.lab, pytest.mark.slow]
N = 100


def test_second_chance_breaks_nothing_at_20_percent_mirror_loss() -> None:
    logs: list[str] = []
    modes = ["ecmp", "map", "map-synack", "map-record"]
    result = MirrorLossBench(N, (0.2,), log=logs.append).run(modes)
    print("\n".join(logs) + "\n" + format_table(result))
    ecmp, plain, second = (result["modes"][m]["rounds"][0] for m in ("ecmp", "map", "map-synack"))
    assert ecmp["opened"] == plain["opened"] == second["opened"] == N
    assert ecmp["broken"] > 0, "plain ECMP broke nothing: the events move no flow"
    # the shim really lost SYN copies in both map runs (same seed: the same share)
    for r in (plain, second):
        m = r["mirror"]
        assert m["syn"] + m["syn_dropped"] == N and m["syn_dropped"] >= N // 10, m
    assert plain["mirror"]["synack"] == 0  # no second chance: only SYNs mirrored
    assert second["mirror"]["synack"] == N
    # without the second chance the flows whose SYN copy was lost have no pin, and break
    assert plain["pins"] == plain["mirror"]["syn"]
    assert 0 < plain["broken"] <= plain["mirror"]["syn_dropped"]
    # with it, every flow is pinned (by its SYN or by its SYN-ACK) and none breaks
    assert second["pins"] == N
    assert second["broken"] == 0 and second["alive"] == N
    # the kernel's record: the same SYN copies lost, no SYN-ACK mirror, nothing broken
    record = result["modes"]["map-record"]["rounds"][0]
    assert record["mirror"]["syn_dropped"] >= N // 10
    assert record["pins"] == record["mirror"]["syn"] < N
    assert record["broken"] == 0 and record["alive"] == N
