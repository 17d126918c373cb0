"""The one-direction verdict from cumulative nft counters (fake clock)."""

from __future__ import annotations

from dfagent.core.direction import DirectionProbe


def test_both_directions_is_not_suspected() -> None:
    p = DirectionProbe(window=10, min_packets=100)
    assert p.observe(0, 0, 0) is None  # baseline
    assert p.observe(5, 500, 1) is None  # window not over
    v = p.observe(10, 1000, 3)
    assert v is not None and not v.suspected and (v.packets, v.invalid, v.windows) == (1000, 3, 1)


def test_one_direction_warns_once_per_episode() -> None:
    p = DirectionProbe(window=10, min_packets=100, threshold=0.5)
    p.observe(0, 0, 0)
    v = p.observe(10, 400, 350)  # all but the SYNs INVALID
    assert v is not None and v.suspected and v.warnings == 1
    v = p.observe(20, 800, 700)
    assert v is not None and v.suspected and v.warnings == 1  # still the same episode
    v = p.observe(30, 1800, 701)
    assert v is not None and not v.suspected and v.warnings == 1
    v = p.observe(40, 2200, 1001)
    assert v is not None and v.suspected and v.warnings == 2


def test_quiet_windows_and_counter_resets_judge_nothing() -> None:
    p = DirectionProbe(window=10, min_packets=100)
    p.observe(0, 0, 0)
    assert p.observe(10, 50, 50) is None  # too few packets to judge
    assert p.observe(20, 10, 10) is None  # counters went down: table re-created, new base
    v = p.observe(30, 210, 200)
    assert v is not None and v.suspected and p.verdict.windows == 1
