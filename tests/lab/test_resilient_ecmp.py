"""resilient-ecmp lab: converged state, graceful drain through FRR, and the broken-connection
benchmark at small N (kernel mode must break nothing; plain ECMP must break something, so
this test can fail)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from dfagent.backends.frr.drain import FrrDrain
from dfagent.bench.pcc import GROUPS, PccBench
from dfagent.lab import checks, runner, spec
from dfagent.lab.retry import WaitTimeout, wait_until
from dfagent.lab.state import load_state

pytestmark = pytest.mark.lab
LAB = "resilient-ecmp"


@pytest.fixture
def lab_up():
    the_lab = spec.load(LAB)
    runner.down(LAB)
    state = runner.up(the_lab, log=False)
    try:
        yield state, the_lab
    finally:
        runner.down(LAB)
    assert load_state(LAB) is None


def _vip4_gateways(state) -> set[str]:
    out = subprocess.run(
        runner.exec_argv(state, "lb", ["ip", "-j", "route", "show", "1.1.1.1/32"]),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    route = json.loads(out)[0]
    return {nh["gateway"] for nh in route.get("nexthops", [route])}


def _wait_gateways(state, want: set[str], timeout: float = 20) -> set[str]:
    """The v4 VIP's gateways once they are `want` (what they are instead, at the deadline)."""
    try:
        return wait_until(
            lambda: _vip4_gateways(state),
            timeout,
            0.2,
            f"gateways {sorted(want)}",
            until=want.__eq__,
        )
    except WaitTimeout as exc:  # the caller's assertion shows the set seen against the one wanted
        return set(exc.last)  # type: ignore[call-overload]


def test_checks_hold_and_drain_moves_only_new_paths(lab_up):
    state, the_lab = lab_up
    results = checks.run_checks(state, the_lab)
    assert [r.ok for r in results] == [True] * len(the_lab.checks), results

    drain = FrrDrain(runner.exec_argv(state, "lb", ["vtysh"]))
    assert drain.drained() == set()
    drain.drain(["10.2.1.2", "fd00:2:1::2"])
    drain.drain(["10.2.1.2"])  # idempotent
    assert drain.drained() == {"10.2.1.2", "fd00:2:1::2"}
    assert _wait_gateways(state, {"10.2.2.2", "10.2.3.2"}) == {"10.2.2.2", "10.2.3.2"}
    # the drained server keeps its BGP session: drained is not down
    summary = subprocess.run(
        runner.exec_argv(state, "lb", ["vtysh", "-c", "show bgp summary json"]),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert json.loads(summary)["ipv4Unicast"]["peers"]["10.2.1.2"]["state"] == "Established"

    drain.undrain(["10.2.1.2", "fd00:2:1::2"])
    assert drain.drained() == set()
    want = {"10.2.1.2", "10.2.2.2", "10.2.3.2"}
    assert _wait_gateways(state, want) == want


@pytest.mark.slow
def test_pcc_kernel_and_map_mode_break_nothing_where_ecmp_breaks_connections():
    """Live traffic (a request every 100 ms) on every held connection through each event,
    in three groups: held from the start, opened after each event, opened while each change
    was applied. dfagent breaks none in any group; plain ECMP, in the same run, does."""
    logs: list[str] = []
    result = PccBench(connections=120, fresh=30, log=logs.append, during_rate=30).run(
        ["ecmp", "kernel", "map"]
    )
    print("\n".join(logs))
    ecmp, kernel, mapm = (result["modes"][m] for m in ("ecmp", "kernel", "map"))
    assert ecmp["opened"] == kernel["opened"] == mapm["opened"] == 120
    assert ecmp["broken_total"] > 0, "plain ECMP broke nothing: the benchmark measures nothing"
    for name, r in (("kernel", kernel), ("map", mapm)):
        assert {g: x["broken"] for g, x in r["groups"].items()} == dict.fromkeys(GROUPS, 0), (
            name,
            r["events"],
        )
        assert r["broken_total"] == 0, (name, r["events"])
        # the traffic really ran through each event (a round every 100 ms, give or take)
        assert all(ev["rounds"] >= 10 for ev in r["events"]), (name, r["events"])
        # connections were born while each change was applied, and all were held to the end
        assert all(sum(ev["during"].values()) > 0 for ev in r["events"]), (name, r["events"])
        assert r["groups"]["after"]["opened"] == 4 * 30, (name, r["groups"])
        last = r["events"][-1]["groups"]
        assert last["initial"]["alive"] == 120, (name, last)
        assert last["after"]["alive"] == 3 * 30, (name, last)  # the last batch opens after
        assert last["during"]["alive"] == r["groups"]["during"]["opened"], (name, last)
    # map mode pinned from mirrored SYNs (over the mirror node's veth): every connection made
    made = sum(g["opened"] for g in mapm["groups"].values())
    failed = sum(ev["during_failed"] + ev["fresh_errors"] for ev in mapm["events"])
    assert made - 4 <= mapm["pins"] <= made + failed, (mapm["pins"], made, failed)
    # drained and withdrawn servers get no new connections; the added one does
    by_event = {e["event"]: e["fresh"] for e in kernel["events"]}
    assert "s1" not in by_event["drain s1"]
    assert "s4" in by_event["s4 announces"]
    assert "s2" not in by_event["s2 BGP down"]
    assert "s1" in by_event["undrain s1"]
    rate = result["new_connection_rate"]
    assert rate["without_pinning"] > 0 and rate["kernel_mode"] > 0


def test_bench_pcc_cli_rejects_unknown_mode():
    res = subprocess.run(
        [sys.executable, "-m", "dfagent.cli.main", "bench", "pcc", "--modes", "ecmp,bogus"],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 2 and "bogus" in res.stderr
