"""`dfagent bench pin-rate`: how fast map mode pins flows, and what a pinned flow costs.

In a throw-away network namespace (``dfk-bench-…``, always removed) it installs the map-mode
nft table and measures, through one libnftables handle:

1. **fill**: new pins/s writing N flows (default 1,000,000) in batches of ``--batch``;
2. **latency**: SYN→pin latency under a realistic micro-batch policy (SYNs arriving at
   ``--syn-rate``/s, flushed every ``--max-items`` or ``--max-delay-ms``, whichever first):
   the time from a SYN's arrival to the end of the nft transaction that pinned it;
3. **hold**: the map still holds the flows (sampled with ``get element``: listing a million
   elements takes ~47 s);
4. **memory**: kernel ``Slab`` growth per pinned flow (from /proc/meminfo; other activity on
   the machine adds noise, so it is reported next to the ~100-110 B/element of the notes).
"""

from __future__ import annotations

import json
import random
import secrets
import subprocess
import sys
import time
from typing import Any

TARGET_PINS_PER_S = 50_000


def _meminfo() -> dict[str, int]:
    out = {}
    with open("/proc/meminfo") as f:
        for line in f:
            k, v = line.split(":", 1)
            out[k] = int(v.split()[0]) * 1024
    return out


def _flow(i: int) -> tuple[str, str, int, int, str]:
    # distinct 5-tuples: 64 Ki source ports per client address, clients 10.(i>>24)...
    port = 1024 + (i % 60000)
    host = i // 60000
    src = f"10.{(host >> 16) & 255}.{(host >> 8) & 255}.{host & 255}"
    return (src, "1.1.1.1", port, 8080, "10.0.1.2")


def _percentile(xs: list[float], p: float) -> float:
    if not xs:
        return 0.0
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def _count_present(nft: Any, flows: list[tuple[str, str, int, int, str]]) -> int:
    """How many of these flows are in pin4: one `get element` for all (it fails if any is
    missing; then halves). Each `get` makes nft 1.0.6 load the set, so keep the calls few."""
    from dfagent.backends.linux.nft import NftError
    from dfagent.backends.linux.ruleset import T

    if not flows:
        return 0
    keys = ", ".join(f"{a} . {b} . {c} . {d}" for a, b, c, d, _ in flows)
    try:
        nft.run(f"get element {T} pin4 {{ {keys} }}")
        return len(flows)
    except NftError:
        if len(flows) == 1:
            return 0
    mid = len(flows) // 2
    return _count_present(nft, flows[:mid]) + _count_present(nft, flows[mid:])


def run_inner(opts: dict[str, Any]) -> dict[str, Any]:
    """Runs inside the throw-away namespace."""
    import ipaddress

    from dfagent.backends.linux.mapmode import MapPinner
    from dfagent.backends.linux.nft import Nft
    from dfagent.backends.linux.ruleset import RulesetConfig, render_base, render_slot_chains
    from dfagent.core.marks import MarkSpace
    from dfagent.core.pinbatch import MicroBatcher, PinItem

    flows = int(opts["flows"])
    batch = int(opts["batch"])
    lat_syns = int(opts["latency_syns"])
    size = max(2_000_000, flows + lat_syns + 1000)
    nft = Nft()
    nft.run(
        render_base(
            RulesetConfig(
                (ipaddress.ip_network("1.1.1.1/32"),),
                record=False,
                pin_maps=True,
                pin_map_size=size,
                pin_timeout=3600,
            )
        )
        # the next hop's chain the pins jump to (the datapath makes it per next hop)
        + render_slot_chains(MarkSpace(), 0x0DFA0001, pin_maps=True)
    )
    marks = {(4, "10.0.1.2"): 0x0DFA0001}
    pinner = MapPinner(nft, lambda fam, nh: marks.get((fam, str(nh))), timeout=3600)

    mem0 = _meminfo()
    t0 = time.perf_counter()
    done = failed = 0
    while done < flows:
        n = min(batch, flows - done)
        failed += pinner.pin([_flow(done + k) for k in range(n)]).failed
        done += n
    fill_s = time.perf_counter() - t0
    time.sleep(1.0)  # let RCU-deferred frees settle before reading memory
    mem1 = _meminfo()

    # latency under a micro-batch policy, on top of the full map
    rate = float(opts["syn_rate"])
    batcher = MicroBatcher(
        pinner, max_items=int(opts["max_items"]), max_delay=float(opts["max_delay_ms"]) / 1000
    )
    lat: list[float] = []
    pending: list[float] = []
    orig_flush = batcher.flush

    def flush() -> int:
        n = orig_flush()
        end = time.perf_counter()
        lat.extend(end - a for a in pending)
        pending.clear()
        return n

    batcher.flush = flush  # type: ignore[method-assign]
    start = time.perf_counter()
    for k in range(lat_syns):
        due = start + k / rate
        while True:
            now = time.perf_counter()
            if now >= due:
                break
            batcher.poll(now)
            if due - now > 0.0002:
                time.sleep(min(due - now, 0.0005))
        pending.append(due)  # the SYN arrived at `due` (later if we were busy: counted)
        batcher.add(PinItem(*_flow(flows + k)), now)
        batcher.poll(time.perf_counter())
    flush()
    lat_wall = time.perf_counter() - start

    # hold check: sample elements across the whole fill
    t_hold = time.perf_counter()
    rnd = random.Random(7)
    sample = [0, flows - 1, *(rnd.randrange(flows) for _ in range(int(opts["hold_sample"])))]
    # nft 1.0.6 crashes (SIGSEGV in libnftables) on a `get element` with 200+ keys: chunks
    present = sum(
        _count_present(nft, [_flow(i) for i in sample[j : j + 50]])
        for j in range(0, len(sample), 50)
    )
    hold_s = time.perf_counter() - t_hold
    slab = mem1["Slab"] - mem0["Slab"]
    return {
        "flows": flows,
        "batch": batch,
        "fill_seconds": round(fill_s, 3),
        "pins_per_s": round(flows / fill_s),
        "target_pins_per_s": TARGET_PINS_PER_S,
        "failed": failed,
        "latency": {
            "syns": lat_syns,
            "syn_rate": rate,
            "achieved_rate": round(lat_syns / lat_wall),
            "max_items": int(opts["max_items"]),
            "max_delay_ms": float(opts["max_delay_ms"]),
            "p50_ms": round(_percentile(lat, 50) * 1000, 3),
            "p99_ms": round(_percentile(lat, 99) * 1000, 3),
            "max_ms": round(max(lat) * 1000, 3) if lat else 0.0,
        },
        "hold": {
            "map_size": size,
            "pinned": pinner.count(),
            "sampled": len(sample),
            "present": present,
            "check_seconds": round(hold_s, 1),
        },
        "memory": {
            "slab_bytes": slab,
            "slab_bytes_per_flow": round(slab / flows, 1),
        },
    }


def measure(opts: dict[str, Any]) -> dict[str, Any]:
    """Runs :func:`run_inner` in a throw-away namespace (always removed); raises
    RuntimeError when it fails. ``ok``: the targets are met."""
    ns = f"dfk-bench-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        code = (
            "import json,sys; from dfagent.bench.pinrate import run_inner; "
            "print(json.dumps(run_inner(json.loads(sys.argv[1]))))"
        )
        p = subprocess.run(
            ["ip", "netns", "exec", ns, sys.executable, "-c", code, json.dumps(opts)],
            capture_output=True,
            text=True,
            check=False,
        )
        if p.returncode != 0:
            raise RuntimeError(f"benchmark failed: {p.stderr.strip()[-2000:]}")
        res: dict[str, Any] = json.loads(p.stdout.strip().splitlines()[-1])
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
    res["ok"] = (
        res["pins_per_s"] >= TARGET_PINS_PER_S
        and res["hold"]["present"] == res["hold"]["sampled"]
        and res["failed"] == 0
    )
    return res
