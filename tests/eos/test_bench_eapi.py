"""`dfagent bench eapi` at a small size (CI): the JSON shape, batching visible in the request
counts, every synthetic SYN's pin reaching the switch through the agent loop."""

from __future__ import annotations

import json

from click.testing import CliRunner

from dfagent.cli.main import cli


def test_bench_eapi_small() -> None:
    r = CliRunner().invoke(cli, ["bench", "eapi", "--pins", "120", "--single", "20",
                                 "--syns", "100", "--syn-rate", "500", "--json"])  # fmt: skip
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    b, one, lat = res["batched"], res["one_per_request"], res["latency"]
    assert (b["pins"], b["requests"]) == (120, 1)  # 120 pins in one micro-batch, one request
    assert (one["pins"], one["requests"]) == (20, 20)
    assert b["pins_per_s"] > one["pins_per_s"] and res["speedup"] > 1
    assert lat["syns"] == 100 and 0 < lat["p50_ms"] <= lat["p99_ms"] <= lat["max_ms"]
    assert set(res) >= {"transport", "target_met", "target_pins_per_s"}


def test_bench_eapi_refuses_nonsense() -> None:
    r = CliRunner().invoke(cli, ["bench", "eapi", "--pins", "0"])
    assert r.exit_code == 2 and r.stderr == "error: counts and rates must be more than 0\n"
