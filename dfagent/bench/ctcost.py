"""What the conntrack copy costs per census, at a given number of pinned flows.

Runs in a namespace of its own (:func:`measure` makes and removes it): dfagent's kernel-mode
table with four next hops, then the two parts the copy adds to each census —
parsing every entry's tuple out of the dump (fed a synthetic `conntrack -L` listing, timed
against the plain count) and rewriting one generation map (:meth:`CtCopy.sync`) — and the
kernel memory of both generations (``Slab`` growth in /proc/meminfo; other activity on the
machine adds noise). The dump itself is the census's existing cost (docs/kernel-mode.md).
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


def _inner(n: int) -> dict[str, Any]:
    from dfagent.backends.linux import conntrack
    from dfagent.backends.linux.ctcopy import CtCopy
    from dfagent.backends.linux.nft import Nft
    from dfagent.backends.linux.ruleset import RulesetConfig, render_base, render_slot_chains
    from dfagent.core.marks import MarkSpace
    from dfagent.core.nexthops import parse_vip

    sp = MarkSpace()
    nft = Nft()
    cfg = RulesetConfig((parse_vip("1.1.1.1/32"), parse_vip("2001:db8::1/128")))
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
    copy = CtCopy(nft)
    slab0 = _slab()
    passes = []
    for _ in range(4):  # a, b, a, b: the steady state rewrites a full map each pass
        t0, c0 = time.monotonic(), time.process_time()
        res = copy.sync(parsed, set(SLOTS), period=30.0)
        passes.append((time.monotonic() - t0, time.process_time() - c0, res.written, res.failed))
        if len(passes) == 2:
            slab2 = _slab()
    slab3 = _slab()
    nft.run("delete table inet dfagent")
    time.sleep(2.0)  # element memory is freed after an RCU grace period
    freed = slab3 - _slab()
    return {
        "flows": n,
        "parse_extra_s": round(t_census - t_count, 3),
        "count_parse_s": round(t_count, 3),
        "sync_s": [round(p[0], 3) for p in passes],
        "sync_cpu_s": [round(p[1], 3) for p in passes],
        "written": [p[2] for p in passes],
        "failed": sum(p[3] for p in passes),
        "slab_bytes_two_generations": slab2 - slab0,
        "slab_bytes_per_pin": round((slab2 - slab0) / n, 1),
        # the other way round: what deleting the table (both generations) gave back
        "slab_freed_per_pin": round(freed / n, 1),
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
