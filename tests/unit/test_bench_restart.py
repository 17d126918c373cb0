"""`dfagent bench restart` without a lab: bad input is one line and exit 2; the table."""

from __future__ import annotations

from click.testing import CliRunner

from dfagent.bench.restart import RestartBench, format_table
from dfagent.cli.main import cli


def test_unknown_mode_is_a_usage_error() -> None:
    res = CliRunner().invoke(cli, ["bench", "restart", "--modes", "kernel,bogus"])
    assert res.exit_code == 2 and "unknown mode(s) bogus" in res.output, res.output
    assert "Traceback" not in res.output


def test_negative_pins_refused() -> None:
    res = CliRunner().invoke(cli, ["bench", "restart", "--pins", "-1"])
    assert res.exit_code == 2 and "--pins" in res.output, res.output


def test_synthetic_pins_spread_over_families_and_next_hops() -> None:
    slots = {(s, f): (10 * n + f, 100 * n + f) for n, s in enumerate(("s1", "s2", "s3"))
             for f in (4, 6)}  # fmt: skip
    flows = list(RestartBench(1, pins=600)._synthetic(slots))
    assert len({f[:4] for f in flows}) == 600  # distinct flows
    marks = [f[4] for f in flows]
    assert {marks.count(m) for m in set(marks)} == {100} and len(set(marks)) == 6
    assert all((":" in f[1]) == (f[4] % 10 == 6) for f in flows)  # v6 flows carry v6 marks


def test_table() -> None:
    result = {
        "connections": 60, "pins": 5000, "ready_target_s": 1.0,
        "modes": {
            "ecmp": {"opened": 60, "broken": 41},
            "map": {"opened": 60, "broken": 0, "lost": 0, "marked_before": {"s1/v4": 5060},
                    "elements_lost": 0, "elements_before": 5060, "ready_s": 0.756,
                    "before_first_pass_ms": 684.6, "first_pass_ms": 73.4,
                    "marks_match_s": 0.764, "baseline": {"ready_s": 0.7, "machine_busy_pct": 50.0},
                    "quiet": {"ready_s": 0.8, "machine_busy_pct": 60.0}, "machine_busy_pct": 90.0,
                    "kill_after_drain_ms": 231.0, "agent_down_s": 1.6,
                    "slots_left": ["s2/v4", "s3/v4"], "slots_last": ["s3/v4"]},
        },
    }  # fmt: skip
    lines = format_table(result).splitlines()
    assert lines[2].split() == ["ecmp", "41/60", "-", "-", "-", "-", "-", "-", "-", "-"]
    assert lines[3].split() == ["map", "0/60", "0/5060", "0/5060", "0.756", "0.8", "0.7", "684.6",
                                "73.4", "0.764"]  # fmt: skip
    assert (
        "left them: s2/v4 s3/v4, after the restart: s3/v4; the machine was 90.0 % busy" in lines[4]
    )
