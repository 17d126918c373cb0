"""Pins through a conntrack flush: do pinned connections survive `conntrack -F`?

In kernel mode the pins are conntrack marks. On the resilient-ecmp lab, for each mode: hold N
connections (v4 and v6) through ``lb``, let the agent's census see them (the copy mode waits
until the copy holds them), open ``late`` more (newer than the last census: the window the
copy cannot cover), then, with a request on every connection every 100 ms, drain s1 and flush
lb's conntrack table. Broken = reset, silence or an answer from another server at any round
trip, counted per group.

Modes: ``ecmp`` (plain multipath, no dfagent), ``kernel-nocopy`` (kernel mode as by
default: the marks alone), ``kernel`` (kernel mode with ``--ct-copy``).
"""

from __future__ import annotations

import json
import time
from typing import Any

from dfagent.bench.pcc import SERVERS, VIP4, VIP6, Holder, PccBench
from dfagent.lab.errors import LabError

MODES = ("ecmp", "kernel-nocopy", "kernel")
INTERVAL = 1.0  # agent --reconcile-interval: a census every 6 s (CENSUS_EVERY passes)
COPY_MAPS = ("copy4", "copy6")


class CtFlushBench(PccBench):
    def __init__(self, connections: int, late: int = 0, log: Any = print) -> None:
        super().__init__(connections, fresh=0, log=log, rates=False)
        self.late = late
        self.copy = True

    def _agent_argv(self, mode: str) -> list[str]:
        argv = super()._agent_argv("kernel") + ["--reconcile-interval", str(INTERVAL)]
        return argv + (["--ct-copy"] if self.copy else [])

    def copied(self) -> int:
        """Flows in the copy (both families)."""
        total = 0
        for name in COPY_MAPS:
            out = self._on("lb", ["nft", "-j", "list", "map", "inet", "dfagent", name])
            for obj in json.loads(out)["nftables"]:
                total += len(obj.get("map", {}).get("elem", []))
        return total

    def _wait_copied(self, want: int, timeout: float = 300.0) -> float:
        t0 = time.monotonic()
        while (got := self.copied()) < want:
            if time.monotonic() - t0 > timeout:
                raise LabError(f"the copy holds {got} flows, not {want}, after {timeout:.0f} s")
            time.sleep(0.3)
        return time.monotonic() - t0

    def run_mode(self, mode: str) -> dict[str, Any]:  # type: ignore[override]
        if mode not in MODES:
            raise LabError(f"unknown mode {mode!r}; known: {', '.join(MODES)}")
        self.copy = mode == "kernel"
        self._lab_up()
        assert self.state is not None
        held, late = Holder(self.state), Holder(self.state)
        out: dict[str, Any] = {}
        try:
            if mode != "ecmp":
                self._start_agent("kernel")
            opened = held.ask("open", addrs=[VIP4, VIP6], port=80, count=self.n)
            out["opened"] = opened["opened"]
            if self.copy:
                out["copy_wait_s"] = round(self._wait_copied(opened["opened"]), 1)
            out["late_opened"] = 0
            if self.late:
                got = late.ask("open", addrs=[VIP4, VIP6], port=80, count=self.late)
                out["late_opened"] = got["opened"]
            out["copied_at_flush"] = self.copied() if self.copy else 0
            groups = [("held", held)] + ([("late", late)] if self.late else [])
            for _, h in groups:
                h.send("traffic", seconds=6.0, interval=0.1)
            time.sleep(0.5)
            self._drain().drain(SERVERS["s1"][:2])
            self._wait_servers(frozenset({"s2", "s3"}))
            time.sleep(0.3)
            flushed = self._on("lb", ["conntrack", "-F"], check=False)
            out["flushed"] = flushed.strip() or "ok"
            t_flush = time.monotonic()
            broken = {g: h.reply("traffic")["broken_now"] for g, h in groups}
            if time.monotonic() - t_flush < 2.5:  # at least 2.5 s of traffic after the flush
                for _, h in groups:
                    h.send("traffic", seconds=2.5, interval=0.1)
                for g, h in groups:
                    broken[g] += h.reply("traffic")["broken_now"]
            out["broken"] = broken.get("held", 0)
            out["late_broken"] = broken.get("late", 0)
            self.log(
                f"{mode}: {out['opened']} held, {out['broken']} broken; "
                f"{out['late_opened']} late, {out['late_broken']} broken; "
                f"copy held {out['copied_at_flush']} flows at the flush"
            )
        finally:
            held.close()
            late.close()
            self._lab_down()
        return out

    def run(self, modes: list[str]) -> dict[str, Any]:
        return {
            "connections": self.n,
            "late": self.late,
            "modes": self.per_mode(modes, MODES, self.run_mode),
        }


def format_table(result: dict[str, Any]) -> str:
    lines = [
        f"{result['connections']} connections held (+{result['late']} opened after the last "
        "census), a request on each every 100 ms; drain s1, then `conntrack -F` on lb",
        f"{'mode':14} {'broken':>7} {'late broken':>12} {'in copy at flush':>17}",
    ]
    for mode, r in result["modes"].items():
        late = f"{r['late_broken']}/{r['late_opened']}" if r["late_opened"] else "-"
        copied = str(r["copied_at_flush"]) if mode == "kernel" else "-"
        lines.append(f"{mode:14} {r['broken']:>4}/{r['opened']:<4} {late:>10} {copied:>17}")
    return "\n".join(lines)


def format_cost(c: dict[str, Any]) -> str:
    n = c["flows"]
    return (
        f"copy cost at {n} pins, per census: tuple parsing +{c['parse_extra_s']} s CPU (the "
        f"count alone parses in {c['count_parse_s']} s); first copy (all {n} written) "
        f"{c['full_cpu_s']} s CPU ({1e6 * c['full_cpu_s'] / n:.1f} us per pin, "
        f"{c['full_s']} s wall); a census with {c['churn']} flows gone and {c['churn']} new "
        f"{c['diff_cpu_s']} s CPU ({c['diff_s']} s wall); unchanged {c['same_cpu_s']} s CPU; "
        f"kernel slab {c['slab_bytes_per_pin']} B per pin ({c['slab_freed_per_pin']} B per "
        f"pin freed with the table; /proc/meminfo, noisy); agent memory {c['rss_bytes_per_pin']}"
        f" B per pin (RSS growth); {c['failed']} writes failed"
    )
