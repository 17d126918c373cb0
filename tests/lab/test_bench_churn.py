"""`dfagent bench churn` at CI size on the real resilient-ecmp lab: 30 s per mode of a
next-hop change every second, held and short-lived connections carrying traffic, and a
spoofed SYN flood that fills map mode's small pin map. Kernel mode and map mode with
--record break nothing (map mode evicting pins all along), plain ECMP breaks connections.
Map mode from mirrored SYNs alone may lose a connection opened in the instant before a change
(the SYN→pin window): only such, and no held one. The chart is written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dfagent.bench.churn import ChurnBench, format_table
from dfagent.bench.churn_chart import write_chart

pytestmark = [pytest.mark.lab, pytest.mark.slow]
HELD, CAPACITY = 60, 300


def test_bench_churn_small(tmp_path: Path) -> None:
    logs: list[str] = []
    bench = ChurnBench(HELD, seconds=30, rate=10, hold=3, flood_rate=100, capacity=CAPACITY,
                       log=logs.append)  # fmt: skip
    result = bench.run(["ecmp", "kernel", "map", "map-record"])
    print("\n".join(logs) + "\n" + format_table(result))
    modes = result["modes"]
    short = ("samples", "event_times", "breaks")
    print(json.dumps({m: {k: v for k, v in r.items() if k not in short} for m, r in modes.items()}))
    print("map mode's breaks:", json.dumps(modes["map"]["breaks"][:20]))
    for mode, r in modes.items():
        assert r["held"] == HELD and r["events"] >= 25, (mode, r["events"])
        assert r["made"] >= 200 and r["flood"]["sent"] >= 2500, (mode, r["made"], r["flood"])
        assert len(r["samples"]) >= 25, (mode, len(r["samples"]))
    assert modes["ecmp"]["broken"] > 0, "plain ECMP broke nothing: the changes move no flow"
    for mode in ("kernel", "map-record"):
        r = modes[mode]
        assert r["broken"] == 0 and r["open_failed"] == 0, (mode, r["broken_by"])
        assert r["held_alive"] == HELD
        assert r["rss_kb_start"] and r["rss_kb_end"], mode
    # kernel mode: every spoofed SYN took a marked entry; map mode: the flood filled the
    # v4 pin map and the oldest pins were evicted, the held connections' among them
    assert modes["kernel"]["peak_pins"] >= 2000
    for mode in ("map", "map-record"):
        m = modes[mode]
        assert CAPACITY <= m["peak_pins"] <= 2 * CAPACITY and m["evicted"] >= 1000, (
            mode,
            m["evicted"],
        )
    # pins from mirrored SYNs alone: a new connection whose pin came after a change can break
    # (the SYN→pin window: milliseconds, seconds on a starved machine); a held one cannot
    m = modes["map"]
    assert m["broken_held"] == 0 and m["held_alive"] == HELD, m["breaks"]
    # (600 s on a loaded machine: 82 and 554 of 12,000 new ones, the pin up to 1.9 s late)
    assert all(b["kind"] == "new" for b in m["breaks"]), m["breaks"]
    assert m["broken_new"] <= m["made"] // 10, m["breaks"]
    png = tmp_path / "churn.png"
    assert write_chart(result, str(png)).startswith("chart written")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
