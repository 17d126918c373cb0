"""Kernel-mode pins through a conntrack flush (`conntrack -F`): the copy in nft maps that
each census refreshes, on a real kernel (the linux-router lab), through a firewall
reload, and removed by cleanup."""

from __future__ import annotations

import json

import pytest

from dfagent.lab.retry import wait_until
from tests.lab.router_lab import VIP4, VIP6, Lab, broken, wait_agent
from tests.lab.test_linux_reliability import reload_firewall

pytestmark = pytest.mark.lab
VIPS = ("--vip", f"{VIP4}/32", "--vip", f"{VIP6}/128")
# a census every 6 passes (1 s here), or 100× its CPU cost: the kernel walks the conntrack
# hash table shared by every namespace, so other jobs on the machine stretch it (0.6 s seen)
COPY_WAIT = 300.0  # returns as soon as it holds them; long only when the machine is busy


def copied(lab: Lab) -> int:
    """Flows in the copy (both families)."""
    total = 0
    for fam in "46":
        out = lab.x("r", f"nft -j list map inet dfagent copy{fam}")
        for obj in json.loads(out)["nftables"]:
            total += len(obj.get("map", {}).get("elem", []))
    return total


@pytest.mark.parametrize("copy", [True, False], ids=["copy", "no-copy"])
def test_pins_survive_a_conntrack_flush(lab: Lab, copy: bool) -> None:
    """Drain s1, then flush the router's conntrack table: with the copy every connection
    keeps its server; with the marks alone s1's connections re-record onto s2/s3."""
    lab.start_agent("kernel", *VIPS, extra=("--ct-copy",) if copy else ())
    wait_agent(lab, what="agent", timeout=60)
    before = lab.open(30, 20)
    assert lab.status()["missing"] == []
    if copy:
        wait_until(lambda: copied(lab) >= 50, timeout=COPY_WAIT, what="50 flows in the copy")
    lab.set_members(("s2", "s3"))
    lab.x("r", "conntrack -F")
    after = lab.check()
    n = broken(before, after)
    print(f"copy={copy}: {n} of {len(before)} broken by drain s1 + conntrack -F")
    if not copy:
        assert n > 0
        return
    assert n == 0, list(zip(before, after, strict=True))
    # the entries the flush dropped are back, each with its next hop's mark from the copy
    flag = "0x08000000/0x08000000"
    marked = sum(
        lab.x("r", f"conntrack -L -f {f} -m {flag}").count("mark=") for f in ("ipv4", "ipv6")
    )
    assert marked == 50, marked


def test_copy_survives_a_firewall_reload_and_cleanup_removes_it(lab: Lab) -> None:
    """`flush ruleset` + the include file re-creates the copy maps (empty); the next census
    sees the new maps and fills them again, and a flush after that moves nothing. Cleanup
    removes them."""
    lab.start_agent("kernel", *VIPS, extra=("--ct-copy",))
    wait_agent(lab, what="agent", timeout=60)
    before = lab.open(30, 20)
    wait_until(lambda: copied(lab) >= 50, timeout=COPY_WAIT, what="50 flows in the copy")
    reload_firewall(lab, include=True)
    assert lab.status()["missing"] == []  # the include made every map, the copy's too
    wait_until(lambda: copied(lab) >= 50, timeout=COPY_WAIT, what="the copy refilled")
    lab.set_members(("s1", "s3"))
    lab.x("r", "conntrack -F")
    after = lab.check()
    assert broken(before, after) == 0, list(zip(before, after, strict=True))
    lab.dfagent("cleanup", "--stop-agent")
    assert lab.agent is not None
    lab.agent.wait(5)
    assert "table inet dfagent" not in lab.x("r", "nft list tables")


def test_bench_ctflush_small() -> None:
    """`dfagent bench ctflush` at a small size: 0 broken with the copy, > 0 without it and
    with plain ECMP (same run)."""
    from dfagent.bench.ctflush import CtFlushBench

    result = CtFlushBench(60, log=print).run(["ecmp", "kernel-nocopy", "kernel"])
    modes = result["modes"]
    print(json.dumps(modes))
    assert modes["kernel"]["opened"] == 60 and modes["kernel"]["broken"] == 0
    assert modes["kernel-nocopy"]["broken"] > 0
    assert modes["ecmp"]["broken"] > 0


def test_bench_ctflush_cost_small() -> None:
    """`--cost-flows` at a small size: every write lands, and an unchanged census costs
    less than writing the copy whole."""
    from dfagent.bench.ctcost import measure

    c = measure(3000)
    print(json.dumps(c))
    assert c["flows"] == 3000 and c["failed"] == 0 and c["churn"] == 30
    assert c["same_cpu_s"] < c["full_cpu_s"]
