"""Sample a router's pin table and its agent once a second, from inside the router's namespace.

    python -m dfagent.lab.pinwatch --pid 1234 --maps pin4,pin6 --metrics http://127.0.0.1:9642/metrics

One JSON line per sample: ``t`` (Unix time), ``ct`` (conntrack entries), ``pins`` (elements in
the named nft maps of dfagent's table), ``marked`` (with ``--marked MASK``: conntrack entries
carrying any of those mark bits: kernel mode's pins), ``evicted`` and ``failed`` (the agent's
``dfagent_pins_evicted`` and failed-pin counters, from its metrics endpoint; ``slow_pins``:
SYNs pinned more than 100 ms after the receiver read them, so far), ``early_drop``
and ``drop`` (the kernel's conntrack evictions and refusals, summed over CPUs), ``rss_kb``
(the agent's VmRSS). What cannot be read is null. Ends after ``--seconds`` (bounded) or on
SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

MAX_SECONDS = 3600.0
SCRAPED = ("evicted", "failed", "slow_pins")
CT_COUNT = Path("/proc/sys/net/netfilter/nf_conntrack_count")
_MARK = re.compile(rb"\bmark=(\d+)")


def _run(argv: list[str]) -> bytes:
    try:
        return subprocess.run(argv, capture_output=True, timeout=20, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return b""


def map_elements(names: list[str]) -> int | None:
    total = 0
    for name in names:
        out = _run(["nft", "-j", "list", "map", "inet", "dfagent", name])
        try:
            objs = json.loads(out)["nftables"]
        except (ValueError, KeyError):
            return None
        total += sum(len(o.get("map", {}).get("elem", [])) for o in objs)
    return total


def marked_entries(mask: int) -> int:
    n = 0
    for fam in ("ipv4", "ipv6"):
        out = _run(["conntrack", "-L", "-f", fam])
        n += sum(1 for m in _MARK.finditer(out) if int(m.group(1)) & mask)
    return n


def ct_stats() -> dict[str, int]:
    tot: dict[str, int] = {}
    for k, v in re.findall(r"(\w+)=(\d+)", _run(["conntrack", "-S"]).decode()):
        if k != "cpu":
            tot[k] = tot.get(k, 0) + int(v)
    return tot


def scrape(url: str) -> dict[str, int | None]:
    """The agent's eviction and failed-pin counters (null while it does not answer)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            text = resp.read().decode()
    except OSError:
        return dict.fromkeys(SCRAPED)

    def get(pattern: str) -> int | None:
        m = re.search(pattern + r" (\S+)$", text, re.M)
        return int(float(m.group(1))) if m else None

    fast = get(r'^dfagent_syn_to_pin_seconds_bucket\{le="0\.1"\}')
    total = get(r"^dfagent_syn_to_pin_seconds_count")
    return {
        "evicted": get(r"^dfagent_pins_evicted_total"),
        "failed": get(r'^dfagent_pins_total\{[^}]*result="failed"[^}]*\}'),
        "slow_pins": total - fast if total is not None and fast is not None else None,
    }


def rss_kb(pid: int) -> int | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    m = re.search(r"^VmRSS:\s+(\d+)", text, re.M)
    return int(m.group(1)) if m else None


def sample(a: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"t": round(time.time(), 3)}
    try:
        out["ct"] = int(CT_COUNT.read_text())
    except (OSError, ValueError):
        out["ct"] = None
    out["pins"] = map_elements(a.maps.split(",")) if a.maps else None
    out["marked"] = marked_entries(int(a.marked, 0)) if a.marked else None
    out.update(scrape(a.metrics) if a.metrics else dict.fromkeys(SCRAPED))
    st = ct_stats()
    out["early_drop"], out["drop"] = st.get("early_drop"), st.get("drop")
    out["rss_kb"] = rss_kb(a.pid) if a.pid else None
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pid", type=int, default=0, help="the agent's process id")
    ap.add_argument("--maps", default="", help="comma-separated map names (dfagent's table)")
    ap.add_argument("--marked", default="", help="count conntrack entries with these mark bits")
    ap.add_argument("--metrics", default="", help="the agent's metrics URL")
    ap.add_argument("--interval", type=float, default=1.0)
    ap.add_argument("--seconds", type=float, default=600.0)
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    end = time.monotonic() + min(a.seconds, MAX_SECONDS)
    nxt = time.monotonic()
    while time.monotonic() < end:
        print(json.dumps(sample(a)), flush=True)
        nxt += a.interval
        time.sleep(max(0.0, nxt - time.monotonic()))


if __name__ == "__main__":
    main()
