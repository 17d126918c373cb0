"""Kernel-mode pinning on a real kernel: the linux-router lab (client → router → three
servers with an anycast VIP, v4 and v6, L4 hashing; see tests/lab/router_lab.py).

The client (and the router itself, for egress) holds connections open and checks each one
with a request/response round trip; the tests change the router's ECMP set as BGP would.
"""

from __future__ import annotations

import time

import pytest

from dfagent.lab.retry import wait_until
from tests.lab.router_lab import (
    SERVER_IFACE,
    SERVERS,
    VIP4,
    VIP6,
    Lab,
    broken,
    in_map,
    wait_agent,
)

pytestmark = pytest.mark.lab


def test_without_pinning_connections_break(lab: Lab) -> None:
    """The control: plain ECMP breaks connections when a next hop leaves (so tests can fail)."""
    before = lab.open(30, 20)
    local = lab.open(20, 10, node="r")
    assert set(before) == set(SERVERS), before
    lab.set_members(("s2", "s3"))
    after = lab.check()
    after_local = lab.check(node="r")
    print(f"plain ECMP: {broken(before, after)} of {len(before)} forwarded connections broke")
    print(f"plain ECMP: {broken(local, after_local)} of {len(local)} egress connections broke")
    assert broken(before, after) > 0
    assert broken(local, after_local) > 0


def test_kernel_mode(lab: Lab) -> None:
    base = lab.snapshot()
    lab.start_agent("kernel", "--vip", f"{VIP4}/32", "--vip", f"{VIP6}/128")
    wait_agent(lab, what="agent rules and nft map")
    marks0 = {n["nexthop"]: n["mark"] for n in lab.status()["nexthops"]}

    before = lab.open(30, 20)
    local = lab.open(20, 10, node="r")
    assert set(before) == set(SERVERS), before
    on_s1 = [i for i, n in enumerate(before) if n == "s1"]

    # 1. drain s1: it leaves the ECMP set but still answers → nothing breaks
    lab.set_members(("s2", "s3"))
    after = lab.check()
    after_local = lab.check(node="r")
    print(f"kernel mode, drain: {broken(before, after)} of {len(before)} forwarded broke")
    print(f"kernel mode, drain: {broken(local, after_local)} of {len(local)} egress broke")
    assert broken(before, after) == 0, list(zip(before, after, strict=True))
    assert broken(local, after_local) == 0, list(zip(local, after_local, strict=True))
    fresh = lab.open(20, 10, keep=False)
    assert "s1" not in fresh and set(fresh) <= {"s2", "s3"}
    st = lab.status()
    s1 = [n for n in st["nexthops"] if n["gateway"] in ("10.0.1.2", "fd00:1::2")]
    assert len(s1) == 2 and all(n["state"] == "drained" and n["rule"] for n in s1), s1
    assert sum(n["pinned"] for n in s1) == len(on_s1) + local.count("s1")
    lab.close(node="r")

    # 2. the agent restarts: the kernel keeps pinning meanwhile; the restart adopts state
    lab.stop_agent()
    assert broken(before, lab.check()) == 0
    lab.start_agent(
        "kernel", "--vip", f"{VIP4}/32", "--vip", f"{VIP6}/128", extra=("--dead-hold", "3")
    )
    wait_agent(lab, 4, what="agent back")
    time.sleep(1.5)
    st = lab.status()
    assert {n["nexthop"]: n["mark"] for n in st["nexthops"]} == marks0
    assert broken(before, lab.check()) == 0
    # and again with the state file lost: marks are adopted from the nft maps and tables
    lab.stop_agent()
    (lab.tmp / "state" / "linux-datapath.json").unlink()
    lab.start_agent(
        "kernel", "--vip", f"{VIP4}/32", "--vip", f"{VIP6}/128", extra=("--dead-hold", "3")
    )
    wait_until(lambda: len(lab.status()["nexthops"]) == 6, what="agent back without state")
    st = lab.status()
    assert {n["nexthop"]: n["mark"] for n in st["nexthops"]} == marks0
    assert broken(before, lab.check()) == 0

    # 3. s1 dies (its link goes down): its pins are released at once — those connections
    #    are answered by a reset from the surviving servers instead of black-holing
    lab.x("s1", f"ip link set {SERVER_IFACE} down")
    wait_until(
        lambda: all(
            n["state"] == "dead" and not n["rule"]
            for n in lab.status()["nexthops"]
            if n["gateway"] in ("10.0.1.2", "fd00:1::2")
        ),
        what="s1 released",
    )
    after = lab.check(timeout=3)
    assert all(after[i] == "reset" for i in on_s1), [after[i] for i in on_s1]
    others = [i for i in range(len(before)) if i not in on_s1]
    assert all(after[i] == before[i] for i in others)
    # released and unpinned: s1's tables go away
    wait_until(
        lambda: (
            not any(n["gateway"] in ("10.0.1.2", "fd00:1::2") for n in lab.status()["nexthops"])
        ),
        what="s1 removed",
    )

    # 4. cleanup leaves the router as it was
    lab.x("s1", f"ip link set {SERVER_IFACE} up")
    lab.set_members(SERVERS)
    lab.stop_agent()
    lab.dfagent("cleanup")
    wait_until(lambda: "linkdown" not in lab.x("r", "ip route show table all"), what="carrier")
    after_snap = lab.snapshot()
    for key in base:
        assert after_snap[key] == base[key], key


def test_kernel_mode_nexthop_objects() -> None:
    """Routes through nexthop-object groups (what FRR installs); drain = group shrinks."""
    lab = Lab(nexthop_objects=True)
    try:
        lab.build()
        lab.start_agent("kernel", "--vip", f"{VIP4}/32", "--vip", f"{VIP6}/128")
        wait_agent(lab, what="agent rules and nft map")
        before = lab.open(20, 10)
        assert set(before) == set(SERVERS), before
        lab.set_members(("s2", "s3"))
        wait_until(lambda: in_map(lab.status()) == 4, what="s1 out of the nexthop map")
        after = lab.check()
        print(f"kernel mode, nexthop objects: {broken(before, after)} of {len(before)} broke")
        assert broken(before, after) == 0, list(zip(before, after, strict=True))
        assert "s1" not in lab.open(20, 10, keep=False)
    finally:
        lab.teardown()


def test_kernel_mode_neighbour_failed_releases_pins() -> None:
    """s1 goes silent (it drops every frame; its link stays up): the router's neighbour entry
    fails, the pins are released and s1's connections get a reset at once instead of hanging
    until they time out."""
    lab = Lab(fast_nud=True)
    try:
        lab.build()
        lab.start_agent("kernel", "--vip", f"{VIP4}/32", "--vip", f"{VIP6}/128")
        wait_agent(lab, what="agent rules and nft map")
        before = lab.open(20, 10)
        on_s1 = [i for i, n in enumerate(before) if n == "s1"]
        assert on_s1
        lab.set_members(("s2", "s3"))
        assert broken(before, lab.check()) == 0
        silence = (
            "add table netdev dfk\n"
            "add chain netdev dfk in"
            f" {{ type filter hook ingress device {SERVER_IFACE} priority 0; policy drop; }}\n"
        )
        (lab.tmp / "silence.nft").write_text(silence)
        lab.x("s1", f"nft -f {lab.tmp / 'silence.nft'}")
        after = lab.check(timeout=12)
        print(f"neighbour failed: s1 connections {[after[i] for i in on_s1]}")
        assert all(after[i] == "reset" for i in on_s1), [after[i] for i in on_s1]
        assert all(after[i] == before[i] for i in range(len(before)) if i not in on_s1)
        st = lab.status()
        assert all(
            n["state"] == "dead" and not n["rule"]
            for n in st["nexthops"]
            if n["gateway"] in ("10.0.1.2", "fd00:1::2")
        )
    finally:
        lab.teardown()
