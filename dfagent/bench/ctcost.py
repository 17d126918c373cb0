"""What the conntrack copy costs per census, at a given number of pinned flows.

Runs in a namespace of its own (:func:`measure` makes and removes it): dfagent's kernel-mode
table with four next hops, then the two parts the copy adds to each census —
parsing every entry's tuple out of the dump (fed a synthetic `conntrack -L` listing, timed
against the plain count) and syncing the copy (:meth:`CtCopy.sync`: the first, full write;
one with 1 % of the flows replaced; one with nothing changed) — and the memory: kernel
``Slab`` growth in /proc/meminfo (other activity on the machine adds noise) and the agent's
RSS growth (the set of copied flows). The dump itself is the census's existing cost
(docs/kernel-mode.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from typing import Any

SLOTS = (0x0DFA0001, 0x0DFA0002, 0x0DFA0003, 0x0DFA0004)


def _slab() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("Slab:"):
                return int(line.split()[1]) * 1024
    return 0


def _rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def _inner(n: int) -> dict[str, Any]:
    from dfagent.backends.linux import conntrack
    from dfagent.backends.linux.ctcopy import CtCopy
    from dfagent.backends.linux.nft import Nft
    from dfagent.backends.linux.ruleset import RulesetConfig, render_base, render_slot_chains
    from dfagent.core.marks import MarkSpace
    from dfagent.core.nexthops import parse_vip

    sp = MarkSpace()
    nft = Nft()
    cfg = RulesetConfig((parse_vip("1.1.1.1/32"), parse_vip("2001:db8::1/128")), ct_copy=True)
    nft.run(render_base(cfg) + "".join(render_slot_chains(sp, s, True) for s in SLOTS))
    flows = [
        (f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", "1.1.1.1", 1024 + i % 60000, 80,
         SLOTS[i % 4])
        for i in range(n)
    ]  # fmt: skip
    lines = b"".join(
        b"tcp      6 431999 ESTABLISHED src=%s dst=%s sport=%d dport=%d src=10.9.0.2 dst=%s"
        b" sport=80 dport=%d [ASSURED] mark=%d use=1\n"
        % (f[0].encode(), f[1].encode(), f[2], f[3], f[0].encode(), f[2], sp.mark(f[4]))
        for f in flows
    )

    def fake(args: list[str], timeout: float) -> subprocess.CompletedProcess[bytes]:
        return subprocess.CompletedProcess(args, 0, lines if args[2] == "ipv4" else b"", b"")

    conntrack._conntrack = fake  # this process only (a namespace of its own)
    t0 = time.thread_time()
    conntrack.count_by_slot(sp)
    t_count = time.thread_time() - t0
    t0 = time.thread_time()
    _, parsed = conntrack.census(sp)
    t_census = time.thread_time() - t0
    assert len(parsed) == n
    if not nft.run_json("list maps inet", terse=True):
        raise RuntimeError("no copy maps were installed")
    copy = CtCopy(nft)
    live = set(SLOTS)
    rss0, slab0 = _rss(), _slab()

    def timed(fl: list[tuple[str, str, int, int, int]]) -> tuple[float, float, int]:
        t0, c0 = time.monotonic(), time.process_time()
        res = copy.sync(fl, live)
        return time.monotonic() - t0, time.process_time() - c0, res.failed

    full_s, full_cpu, f1 = timed(parsed)
    slab1, rss1 = _slab(), _rss()
    churn = max(1, n // 100)  # 1 % of the flows ended, as many new ones
    fresh = [
        (f"10.200.{i >> 8 & 255}.{i & 255}", "1.1.1.1", 2000, 80, SLOTS[0]) for i in range(churn)
    ]
    diff_s, diff_cpu, f2 = timed(parsed[churn:] + fresh)
    same_s, same_cpu, f3 = timed(parsed[churn:] + fresh)
    slab3 = _slab()
    nft.run("delete table inet dfagent")
    time.sleep(2.0)  # element memory is freed after an RCU grace period
    freed = slab3 - _slab()
    return {
        "flows": n,
        "parse_extra_s": round(t_census - t_count, 3),
        "count_parse_s": round(t_count, 3),
        "full_s": round(full_s, 3),
        "full_cpu_s": round(full_cpu, 3),
        "churn": churn,
        "diff_s": round(diff_s, 3),
        "diff_cpu_s": round(diff_cpu, 3),
        "same_s": round(same_s, 3),
        "same_cpu_s": round(same_cpu, 3),
        "failed": f1 + f2 + f3,
        "slab_bytes_per_pin": round((slab1 - slab0) / n, 1),
        "slab_freed_per_pin": round(freed / n, 1),  # what deleting the table gave back
        "rss_bytes_per_pin": round((rss1 - rss0) / n, 1),
    }


def measure(n: int) -> dict[str, Any]:
    """Run :func:`_inner` in a fresh namespace (removed afterwards)."""
    ns = f"dfa-ctcost-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        code = "import sys, json; from dfagent.bench.ctcost import _inner; "
        code += "print(json.dumps(_inner(int(sys.argv[1]))))"
        out = subprocess.run(
            ["ip", "netns", "exec", ns, sys.executable, "-c", code, str(n)],
            capture_output=True, text=True, check=True, timeout=900,
        )  # fmt: skip
        return dict(json.loads(out.stdout.strip().splitlines()[-1]))
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
