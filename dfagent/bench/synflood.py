"""A spoofed SYN flood at the VIP while pinned connections carry traffic (issue 11, item 7).

Kernel mode makes a stateless router stateful: every SYN to a VIP takes a conntrack entry,
and when the table is full the kernel drops new flows it cannot make room for (it evicts
only *unassured* entries, from 8 hash buckets next to the new flow's). On the
resilient-ecmp lab, for each mode on a fresh lab:

1. optionally fill lb's table with ``established`` assured entries (a busy router's live
   connections, made by ctnetlink: ``dfagent.lab.ctfill``);
2. open N pinned connections (v4 + v6) and put a request on each every 100 ms;
3. flood the VIP from the client with spoofed SYNs (``dfagent.lab.synflood``, sources in
   100.64.0.0/10, lb routes them back to the client, which drops the SYN-ACKs) sized to fill
   what is left of the table (nf_conntrack_max is global and read-only in a namespace:
   262,144 here), then keep it full while
4. legitimate new connections are attempted at a steady rate.

Broken = a held connection reset, silent or answered by another server at any request;
new connections: answered within 3 s (``slow``: over 0.9 s, a retransmitted SYN).

Modes: ``ecmp`` (no dfagent: lb tracks nothing), ``kernel`` (kernel mode as it was:
SYNs tracked), ``kernel-guard`` (kernel mode with ``--syn-untracked``: a VIP flow's entry
is made by its first ACK, so spoofed SYNs take none).
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import time
from typing import Any

from dfagent.bench.pcc import VIP4, VIP6, Holder, PccBench
from dfagent.lab import runner
from dfagent.lab.errors import LabError

MODES = ("ecmp", "kernel", "kernel-guard")
SPOOF_NET = "100.64.0.0/10"
CT_MAX = "/proc/sys/net/netfilter/nf_conntrack_max"
CT_COUNT = "/proc/sys/net/netfilter/nf_conntrack_count"


class SynFloodBench(PccBench):
    def __init__(
        self,
        connections: int,
        established: int = 0,
        flood_rate: float = 20000.0,
        new_rate: float = 20.0,
        measure: float = 10.0,
        log: Any = print,
        leave_free: int | None = None,
    ) -> None:
        """``leave_free``: preload assured entries until that many slots are left (instead of
        ``established``): the same scenario whatever the host's nf_conntrack_max."""
        super().__init__(connections, fresh=0, log=log, rates=False)
        self.established = established
        self.flood_rate = flood_rate
        self.new_rate = new_rate
        self.measure = measure
        self.guard = False
        self.leave_free = leave_free

    def _agent_argv(self, mode: str) -> list[str]:
        argv = super()._agent_argv("kernel")
        return argv + (["--syn-untracked"] if self.guard else [])

    def _ct_stats(self) -> dict[str, int]:
        """Sums over CPUs of lb's `conntrack -S` counters (drop: table full)."""
        out = self._on("lb", ["conntrack", "-S"], check=False)
        tot: dict[str, int] = {}
        for k, v in re.findall(r"(\w+)=(\d+)", out):
            if k != "cpu":
                tot[k] = tot.get(k, 0) + int(v)
        return tot

    def _count(self) -> int:
        return int(self._on("lb", ["cat", CT_COUNT], check=False).strip() or 0)

    def _bg(self, node: str, argv: list[str]) -> subprocess.Popen[str]:
        assert self.state is not None
        return subprocess.Popen(
            runner.exec_argv(self.state, node, argv), stdout=subprocess.PIPE, text=True
        )

    def run_mode(self, mode: str) -> dict[str, Any]:  # type: ignore[override]
        if mode not in MODES:
            raise LabError(f"unknown mode {mode!r}; known: {', '.join(MODES)}")
        self.guard = mode == "kernel-guard"
        self._lab_up()
        assert self.state is not None
        held, new = Holder(self.state), Holder(self.state)
        flood: subprocess.Popen[str] | None = None
        out: dict[str, Any] = {}
        try:
            # the spoofed sources' way back: lb sends the SYN-ACKs to the client, which drops
            # them (nobody answers, so the flood's entries stay unassured)
            self._on("lb", ["ip", "route", "add", SPOOF_NET, "via", "10.1.0.10"])
            if mode != "ecmp":
                self._start_agent("kernel")
            ct_max = int(self._on("lb", ["cat", CT_MAX]).strip())
            out["ct_max"] = ct_max
            if self.leave_free is not None:
                self.established = max(0, ct_max - self.leave_free - self._count())
            if self.established:
                got = json.loads(
                    self._on(
                        "lb",
                        [
                            sys.executable,
                            "-m",
                            "dfagent.lab.ctfill",
                            "--count",
                            str(self.established),
                            "--dst",
                            VIP4,
                        ],
                    )  # fmt: skip
                )
                if got["failed"]:
                    raise LabError(f"ctfill: {got['failed']} entries failed ({got['error']})")
            out["established"] = self.established
            opened = held.ask("open", addrs=[VIP4, VIP6], port=80, count=self.n)
            out["opened"] = opened["opened"]
            new.ask("open", addrs=[VIP4, VIP6], port=80, count=0)  # the target alone
            free = max(0, ct_max - self._count())
            fill_s = math.ceil(1.3 * free / self.flood_rate) + 1
            total_s = fill_s + self.measure + 1
            held.send("traffic", seconds=total_s + 1, interval=0.1)
            flood = self._bg(
                "client",
                [sys.executable, "-m", "dfagent.lab.synflood", "--dst", VIP4,
                 "--rate", str(self.flood_rate), "--seconds", str(total_s),
                 "--max", str(int(self.flood_rate * total_s) + 1), "--src-net", SPOOF_NET],
            )  # fmt: skip
            time.sleep(fill_s)
            out["ct_count_flooded"] = self._count()
            before = self._ct_stats()
            new.send("attempts", rate=self.new_rate, seconds=self.measure, timeout=3.0)
            attempts = new.reply("attempts")
            after = self._ct_stats()
            out["ct_count_end"] = self._count()
            try:
                flooded, _ = flood.communicate(timeout=total_s + 30)
            except subprocess.TimeoutExpired:
                raise LabError(f"the flood did not end in {total_s + 30:.0f} s") from None
            out["flood"] = json.loads(flooded.strip().splitlines()[-1])
            flood = None
            traffic = held.reply("traffic")
            out["broken"] = traffic["broken_now"]
            out["new"] = attempts
            out["new_success"] = round(attempts["ok"] / max(1, attempts["attempted"]), 3)
            out["ct_drops"] = after.get("drop", 0) - before.get("drop", 0)
            out["ct_early_drops"] = after.get("early_drop", 0) - before.get("early_drop", 0)
            self.log(
                f"{mode}: {out['broken']} of {out['opened']} held broken; new connections "
                f"{attempts['ok']}/{attempts['attempted']} ok ({attempts['slow']} slow); table "
                f"{out['ct_count_flooded']}/{ct_max} after the fill; drops {out['ct_drops']}, "
                f"early drops {out['ct_early_drops']}; flood {out['flood']}"
            )
        finally:
            if flood is not None and flood.poll() is None:
                flood.kill()
                flood.wait()
            held.close()
            new.close()
            self._lab_down()
        return out

    def run(self, modes: list[str]) -> dict[str, Any]:
        return {
            "connections": self.n,
            "established": self.established,
            "flood_rate": self.flood_rate,
            "new_rate": self.new_rate,
            "measure_s": self.measure,
            "modes": self.per_mode(modes, MODES, self.run_mode),
        }


def format_table(r: dict[str, Any]) -> str:
    lines = [
        f"{r['connections']} pinned connections (a request each every 100 ms), "
        f"{r['established']} established entries preloaded; spoofed SYN flood at "
        f"{r['flood_rate']:.0f}/s filling lb's table; new connections at {r['new_rate']:.0f}/s "
        f"for {r['measure_s']:.0f} s during it",
        f"{'mode':13} {'broken':>9} {'new ok':>10} {'success':>8} {'slow':>5} "
        f"{'table after fill':>17} {'ct drops':>9} {'early drops':>12}",
    ]
    for mode, m in r["modes"].items():
        n = m["new"]
        lines.append(
            f"{mode:13} {m['broken']:>4}/{m['opened']:<4} {n['ok']:>5}/{n['attempted']:<4} "
            f"{m['new_success']:>8.3f} {n['slow']:>5} "
            f"{m['ct_count_flooded']:>8}/{m['ct_max']:<8} {m['ct_drops']:>9} "
            f"{m['ct_early_drops']:>12}"
        )
    return "\n".join(lines)
