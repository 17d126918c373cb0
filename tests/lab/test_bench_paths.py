"""`dfagent bench icmp|flowlabel|udp` at a small size on the resilient-ecmp-mid lab: dfagent
(kernel and map mode) breaks nothing, plain ECMP in the same run does."""

from __future__ import annotations

import pytest

from dfagent.bench.flowlabel import FlowLabelBench
from dfagent.bench.icmp import IcmpBench
from dfagent.bench.udp import UdpBench

pytestmark = pytest.mark.lab
N = 40


def _quiet(_: str) -> None:
    pass


def test_icmp_errors_follow_the_pin_and_pmtu_works_across_a_drain():
    res = IcmpBench(N, log=_quiet).run(["ecmp", "kernel", "map"])["modes"]
    for mode in ("kernel", "map"):
        r = res[mode]
        assert r["opened"] == N, r
        # "opened": before map mode's pins reached the ct mark (the RELATED rule looks the
        # flow's conntrack tuple up in the pin maps)
        for rnd in r["rounds"]:
            assert rnd["sent"] == N and rnd["right"] == N, (mode, rnd)
            assert rnd["wrong"] == 0 and rnd["missing"] == 0, (mode, rnd)
        assert r["rounds"][-1]["broken"] == 0, r
        # every reply larger than mid's MTU arrived, those from the drained s1 included
        assert r["pmtu"]["failed"] == {} and r["pmtu"]["ok"].get("s1", 0) > 0, r
        assert sum(r["pmtu"]["ok"].values()) == N, r
    e = res["ecmp"]
    # all errors from mid hash to one server per family: most land elsewhere
    assert all(rnd["wrong"] > 0 for rnd in e["rounds"]), e
    assert sum(e["pmtu"]["failed"].values()) > 0, e


def test_flow_label_changes_move_connections_only_without_pinning():
    res = FlowLabelBench(N, log=_quiet, rounds=1).run(["ecmp", "kernel", "map"])["modes"]
    for mode, r in res.items():
        assert r["opened"] == N, (mode, r)
        # the loss really re-labelled the connections (mid saw a second label per flow)
        assert r["label_changed"] >= N // 2 and r["timeout_rehash"] > 0, (mode, r)
    assert res["kernel"]["moved_total"] == 0 and res["map"]["moved_total"] == 0, res
    assert res["ecmp"]["moved_total"] > 0, res["ecmp"]


def test_udp_sessions_survive_drain_add_and_bgp_down_and_pins_end_with_conntrack():
    res = UdpBench(N, log=_quiet).run(["ecmp", "kernel", "kernel-tcp"])["modes"]
    k = res["kernel"]
    assert k["opened"] == N and k["lost_total"] == 0, k
    assert [ev["alive"] for ev in k["events"]] == [N] * 4, k
    # a pin per session while the traffic runs, none once conntrack's timeout passed
    assert k["pinned_udp_entries"] == N and k["pinned_udp_entries_after_timeout"] == 0, k
    for mode in ("ecmp", "kernel-tcp"):  # UDP not pinned: ECMP moves sessions
        assert res[mode]["opened"] == N and res[mode]["lost_total"] > 0, res[mode]
    assert res["kernel-tcp"]["pinned_udp_entries"] == 0, res["kernel-tcp"]


def test_an_icmp_error_never_pins_a_flow_to_where_the_error_was_hashed():
    """Connections opened before kernel mode started carry no pin; ICMP errors about them
    (all hashed to one server by lb) must not record that server as their pin — the record
    rule matches VIP . tcp, not ICMP — so their next requests still reach their server."""
    from dfagent.bench.pcc import CONNTRACK_ONLY, PORT, VIP4, VIP6, Holder

    b = IcmpBench(N, log=_quiet)
    with b.fresh_lab("ecmp"):
        assert b.state is not None
        # conntrack on before the connections (a router that already tracks): entries, mark 0
        b.on("lb", "nft", "-f", "-", stdin=CONNTRACK_ONLY)
        holder = Holder(b.state)
        try:
            assert holder.ask("open", addrs=[VIP4, VIP6], port=PORT, count=N)["opened"] == N
            b._start_agent("kernel")
            rnd = b._errors_round(holder)
            assert rnd["sent"] == N and rnd["wrong"] > 0, rnd  # unpinned: ECMP delivers them
            marked = [
                line
                for line in b.on(
                    "lb", "conntrack", "-L", "-p", "tcp", "--dport", str(PORT), check=False
                ).splitlines()  # fmt: skip
                if "mark=0 " not in line
            ]
            assert marked == [], marked
            chk = holder.ask("check")
            assert chk["broken"] == 0 and chk["alive"] == N, chk
        finally:
            holder.close()
