"""Pinning when the router sees only one direction (direct server return).

The kernel-mode lab with ``dsr=True``: every server also sits on the client's segment and
answers from there, so the router ``r`` sees only client → server packets. Conntrack cannot
follow such connections (the SYN's entry stays SYN_SENT, every later packet is INVALID), so
the conntrack-mark pins fail there — asserted, so the tests of the fix can fail — while
``--one-direction`` (per-flow nft maps looked up on every packet) keeps every connection,
in kernel mode (the kernel records the route's choice) and in map mode (pins written through
``MapPinner``; IPv6 keys are the jhash computed in Python, so a wrong hash breaks v6 flows).
The last test runs the broken-connection benchmark on the resilient-ecmp-dsr lab (FRR).
"""

from __future__ import annotations

import json
import time

import pytest

from dfagent.bench.pcc import PccBench
from dfagent.lab.retry import wait_until
from dfagent.lab.state import load_state
from tests.lab.router_lab import SERVERS, VIP4, VIP6, Lab, broken, in_map
from tests.lab.test_map_mode import GW, Feeder

pytestmark = pytest.mark.lab
VIPS = ("--vip", f"{VIP4}/32", "--vip", f"{VIP6}/128")

# ct state of forwarded packets to the VIPs, counted on the router (removed with it)
CT_COUNTERS = """table inet dfkprobe {
  chain f { type filter hook forward priority 0; policy accept;
    ip daddr 1.1.1.1 ct state new counter
    ip daddr 1.1.1.1 ct state invalid counter
    ip daddr 1.1.1.1 ct state established counter
    ip saddr 1.1.1.1 counter
  }
}
"""


@pytest.fixture
def dsr_lab():
    lab = Lab(dsr=True)
    try:
        lab.build()
        yield lab
    finally:
        lab.teardown()


def _counters(lab: Lab) -> list[int]:
    out = json.loads(lab.x("r", "nft -j list table inet dfkprobe"))
    return [
        e["counter"]["packets"]
        for item in out["nftables"]
        if "rule" in item
        for e in item["rule"]["expr"]
        if "counter" in e
    ]


def _flow_elements(lab: Lab) -> list[tuple[int, int]]:
    """(mark, seconds left) of every element of flow4 and flow6."""
    out = []
    for name in ("flow4", "flow6"):
        data = json.loads(lab.x("r", f"nft -j list map inet dfagent {name}"))
        for item in data["nftables"]:
            for key, mark in item.get("map", {}).get("elem", []):
                out.append((int(mark), int(key["elem"].get("expires", 0))))
    return out


def test_conntrack_pins_fail_in_one_direction(dsr_lab: Lab) -> None:
    """What the issue measured, measured again: kernel mode with conntrack marks breaks."""
    lab = dsr_lab
    (lab.tmp / "ct.nft").write_text(CT_COUNTERS)
    lab.x("r", f"nft -f {lab.tmp / 'ct.nft'}")
    lab.start_agent("kernel", *VIPS)
    wait_until(lambda: lab.status()["rules"] >= 6, what="agent")
    before = lab.open(30, 20)
    assert set(before) == set(SERVERS), before
    new, invalid, established, replies = _counters(lab)
    # one NEW packet (the SYN) per v4 connection, everything after it INVALID, no replies
    assert (new, established, replies) == (30, 0, 0), _counters(lab)
    assert invalid >= 30 * 3
    entries = lab.x("r", "conntrack -L -d 1.1.1.1").splitlines()
    assert len(entries) == 30 and all("SYN_SENT" in e and "UNREPLIED" in e for e in entries)
    lab.set_members(("s2", "s3"))
    n = broken(before, lab.check())
    print(f"one direction, conntrack-mark kernel mode, drain s1: {n} of {len(before)} broke")
    assert n >= before.count("s1") > 0  # s1's all, and what the rehash moved off s2/s3
    # the agent notices: a warning in its log, the verdict and counters in `status`
    d = _direction_after_traffic(lab)
    assert d["suspected"] is True and d["warnings"] == 1, d
    assert d["counters"]["vip_invalid"] > d["counters"]["vip_packets"] / 2, d
    assert "one-direction-suspected" in (lab.tmp / "agent.log").read_text()
    assert "WARNING: conntrack sees no replies" in lab.dfagent("status")
    lab.stop_agent()
    lab.dfagent("cleanup")


def _direction_after_traffic(lab: Lab) -> dict:
    """Keep the held connections busy until the agent has judged a full window."""

    def direction() -> dict:
        for _ in range(3):  # ≥ 100 packets per window even when a status call takes seconds
            lab.check()
        return dict(lab.status()["direction"])

    what = "the agent to judge a direction window"
    return wait_until(direction, 30, 0.5, what, until=lambda d: d.get("windows"))


def test_direction_probe_quiet_when_both_directions_are_seen(lab: Lab) -> None:
    """The control of the warning: the plain (both directions) lab is never suspected."""
    lab.start_agent("kernel", *VIPS)
    wait_until(lambda: lab.status()["rules"] >= 6, what="agent")
    lab.open(30, 20)
    d = _direction_after_traffic(lab)
    assert d["suspected"] is False and d["warnings"] == 0 and d["packets"] >= 100, d
    assert d["counters"]["vip_invalid"] < d["counters"]["vip_packets"] / 10, d
    lab.stop_agent()
    lab.dfagent("cleanup")


def test_kernel_mode_one_direction(dsr_lab: Lab) -> None:
    lab = dsr_lab
    base = lab.snapshot()
    lab.start_agent("kernel", *VIPS, extra=("--one-direction", "--notrack", "--fin-timeout", "3"))
    wait_until(lambda: lab.status()["rules"] >= 6, what="agent")
    before = lab.open(30, 20)
    assert set(before) == set(SERVERS), before
    assert lab.x("r", "conntrack -L -d 1.1.1.1").strip() == ""  # notrack: nothing tracked
    wait_until(lambda: len(_flow_elements(lab)) == 50, what="50 recorded pins")

    lab.set_members(("s2", "s3"))
    after = lab.check()
    print(f"one direction, kernel mode, drain s1: {broken(before, after)} of 50 broke")
    assert broken(before, after) == 0, list(zip(before, after, strict=True))
    fresh = lab.open(20, 10, keep=False)
    assert set(fresh) == {"s2", "s3"}, fresh
    st = lab.status()
    assert st["one_direction"] is True
    s1 = [n for n in st["nexthops"] if n["gateway"] in ("10.0.1.2", "fd00:1::2")]
    assert all(n["state"] == "drained" and n["rule"] for n in s1), s1
    assert sum(n["pinned"] for n in s1) == before.count("s1")  # counted from the flow maps

    # a restart keeps every pin (the maps are never emptied)
    lab.stop_agent()
    lab.start_agent("kernel", *VIPS, extra=("--one-direction", "--fin-timeout", "3"))
    wait_until(lambda: lab.status()["rules"] >= 4, what="agent back")
    assert broken(before, lab.check()) == 0

    # the pins carry the default 300 s timeout; FIN cuts them to --fin-timeout
    wait_until(lambda: len(_flow_elements(lab)) == 50, what="the fresh flows' pins gone")
    assert min(left for _, left in _flow_elements(lab)) > 200
    lab.close()
    wait_until(lambda: not _flow_elements(lab), timeout=15, what="pins gone after FIN")
    # and with them the drained s1's rules and tables
    wait_until(
        lambda: (
            not any(n["gateway"] in ("10.0.1.2", "fd00:1::2") for n in lab.status()["nexthops"])
        ),
        what="s1 removed once unpinned",
    )
    lab.set_members(SERVERS)
    lab.stop_agent()
    lab.dfagent("cleanup")
    time.sleep(0.2)
    after_snap = lab.snapshot()
    for key in base:
        assert after_snap[key] == base[key], key


FEEDER_ONE_DIRECTION = r"""
import json, sys
from dfagent.backends.linux.nft import Nft
from dfagent.backends.linux.mapmode import MapPinner, kernel_resolver
nft = Nft()
pinner = MapPinner(nft, kernel_resolver(nft), timeout=300, one_direction=True)
for line in sys.stdin:
    req = json.loads(line)
    st = pinner.pin([tuple(i) for i in req["items"]])
    print(json.dumps({"pinned": st.pinned, "unknown": st.unknown_nexthop,
                      "failed": st.failed}), flush=True)
"""


def test_map_mode_one_direction(dsr_lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pins from MapPinner (v6 keys hashed in Python) hold; traffic keeps them past their
    4 s timeout; idle, they age out and the flows fall back to ECMP."""
    lab = dsr_lab
    lab.start_agent("map", *VIPS, extra=("--one-direction", "--timeout", "4"))
    wait_until(lambda: in_map(lab.status()) >= 6, what="map-mode agent")
    monkeypatch.setattr("tests.lab.test_map_mode.FEEDER_PY", FEEDER_ONE_DIRECTION)
    feed = Feeder(lab)
    before, flows = lab.open_flows(30, 20)
    assert set(before) == set(SERVERS)
    items = []
    for name, (src, sport) in zip(before, flows, strict=True):
        fam = 6 if ":" in src else 4
        items.append([src, VIP6 if fam == 6 else VIP4, sport, 8080, GW[fam][name]])
    res = feed(items=items)
    assert res == {"pinned": 50, "unknown": 0, "failed": 0}, res
    for _ in range(5):  # 7.5 s of traffic: every packet refreshes its pin's 4 s timeout
        assert broken(before, lab.check()) == 0
        time.sleep(1.5)
    assert len(_flow_elements(lab)) == 50
    lab.set_members(("s2", "s3"))
    after = lab.check()
    print(f"one direction, map mode, drain s1: {broken(before, after)} of 50 broke")
    assert broken(before, after) == 0, list(zip(before, after, strict=True))
    # idle for longer than the timeout: the pins age out, and s1's flows now follow ECMP
    wait_until(lambda: not _flow_elements(lab), timeout=10, what="pins aged out")
    n = broken(before, lab.check())
    print(f"one direction, map mode, pins aged out: {n} of 50 broke")
    assert n >= before.count("s1") > 0
    lab.stop_agent()
    lab.dfagent("cleanup")


def test_bench_pcc_asymmetric_small() -> None:
    """The benchmark's events on the DSR lab at small N: ECMP breaks connections (so this
    can fail), kernel and map mode with --one-direction break none."""
    logs: list[str] = []
    result = PccBench(connections=90, fresh=15, log=logs.append, topology="asymmetric").run(
        ["ecmp", "kernel", "map"]
    )
    modes = result["modes"]
    print(json.dumps({m: r["broken_total"] for m, r in modes.items()}))
    print("\n".join(logs))
    assert all(r["opened"] == 90 for r in modes.values()), logs
    assert modes["ecmp"]["broken_total"] > 0, logs
    assert modes["kernel"]["broken_total"] == 0, logs
    assert modes["map"]["broken_total"] == 0, logs
    # the groups opened during and after the changes were held and broke nothing either
    for m in ("kernel", "map"):
        assert modes[m]["groups"]["during"]["opened"] > 0, logs
        assert modes[m]["groups"]["after"]["opened"] == 4 * 15, logs
    assert load_state("resilient-ecmp-dsr") is None
