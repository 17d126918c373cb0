"""Churn under a SYN flood (issue 11, item 2): next-hop changes every second while
connections come and go and a spoofed SYN flood fills the pin table.

On the resilient-ecmp lab, per mode on a fresh lab, for ``seconds``:

* one next-hop change a second, in turn: drain s1, undrain s1, s4 announces, s4 withdraws;
* N held connections (v4 and v6) carry a request every 100 ms the whole time, and new
  connections open at a steady rate, each carrying the same requests for a few seconds
  before it closes (``dfagent.lab.conns`` ``churn``);
* a spoofed SYN flood (``dfagent.lab.synflood``: sources in 100.64.0.0/10, bounded in
  count and time) at the VIP from the client. In map mode every spoofed SYN is mirrored and
  pinned, so the agent runs with a small pin map (``--size``) that the flood fills, and
  ``--evict``: the oldest pins are evicted while the connections keep their conntrack
  marks. In kernel mode every spoofed SYN gets a marked conntrack entry.

Broken = an established connection (held or new) reset, silent for 2 s or answered by
another server; a new connection that never got its first answer is a failed open. Every
second ``dfagent.lab.pinwatch`` samples on lb: the pin-table size (map mode: elements in
pin4/pin6; kernel mode: conntrack entries with dfagent's mark bits), evictions (the agent's
``dfagent_pins_evicted``; the kernel's conntrack early drops beside it), the agent's RSS.

Modes: ``ecmp`` (plain multipath, no agent), ``kernel``, ``map`` (pins from the mirrored
SYNs alone), ``map-record`` (map mode with ``--record``: lb, which sees both directions,
records the route's choice in the conntrack mark of a flow the mirror path has not pinned
yet). Plain map mode has a window: from a SYN passing lb to its pin (the mirror path's
latency, milliseconds, more on a loaded machine) the flow rides plain ECMP, and a change in
that window moves it — once every few hundred new connections here, at one change a
second. ``--record`` closes it.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import threading
import time
from typing import Any

from dfagent.bench.pcc import SERVERS, VIP4, VIP6, Holder, PccBench
from dfagent.bench.synflood import SPOOF_NET
from dfagent.core.marks import DEFAULT_MARK_MASK
from dfagent.lab import runner
from dfagent.lab.errors import LabError

MODES = ("ecmp", "kernel", "map", "map-record")
EVENTS = ("drain s1", "undrain s1", "s4 announces", "s4 withdraws")
METRICS = "127.0.0.1:19642"  # in lb's namespace: no other lab's agent shares it
CLIENT = "10.1.0.10"  # the spoofed sources' way back: lb sends their SYN-ACKs here


class ChurnBench(PccBench):
    def __init__(
        self,
        connections: int = 200,
        seconds: float = 600.0,
        rate: float = 20.0,
        hold: float = 3.0,
        flood_rate: float = 200.0,
        capacity: int = 1000,
        log: Any = print,
    ) -> None:
        super().__init__(connections, fresh=0, log=log, rates=False)
        self.seconds = seconds
        self.rate = rate
        self.hold = hold
        self.flood_rate = flood_rate
        self.capacity = capacity
        self.mode = "map"

    def _agent_argv(self, mode: str) -> list[str]:
        argv = super()._agent_argv(mode) + ["--metrics", METRICS]
        if mode == "map":
            argv += ["--size", str(self.capacity), "--evict"]
        return argv + (["--record"] if self.mode == "map-record" else [])

    def _change(self, name: str) -> None:
        if name == "drain s1":
            self._drain().drain(SERVERS["s1"][:2])
        elif name == "undrain s1":
            self._drain().undrain(SERVERS["s1"][:2])
        else:
            self._announce_s4(name == "s4 announces")

    def _bg(self, node: str, argv: list[str]) -> subprocess.Popen[str]:
        assert self.state is not None
        return subprocess.Popen(
            runner.exec_argv(self.state, node, argv), stdout=subprocess.PIPE, text=True
        )

    def _watch(self, mode: str) -> subprocess.Popen[str]:
        argv = [sys.executable, "-m", "dfagent.lab.pinwatch", "--seconds", str(self.seconds + 60)]
        if self.agent is not None:
            argv += ["--pid", str(self.agent.pid), "--metrics", f"http://{METRICS}/metrics"]
        if mode.startswith("map"):
            argv += ["--maps", "pin4,pin6"]
        elif mode == "kernel":
            argv += ["--marked", hex(DEFAULT_MARK_MASK)]
        return self._bg("lb", argv)

    def run_mode(self, mode: str) -> dict[str, Any]:  # type: ignore[override]
        self.mode = mode
        self._lab_up()
        assert self.state is not None
        holder = Holder(self.state)
        procs: list[subprocess.Popen[str]] = []
        try:
            self._on("lb", ["ip", "route", "add", SPOOF_NET, "via", CLIENT])
            if mode != "ecmp":
                self._start_agent("map" if mode.startswith("map") else mode)
            opened = holder.ask("open", addrs=[VIP4, VIP6], port=80, count=self.n)
            out: dict[str, Any] = {"held": opened["opened"], "held_failed": opened["failed"]}
            watch = self._watch(mode)
            procs.append(watch)
            samples: list[dict[str, Any]] = []
            readers = [_reader(watch, samples)]
            flood = self._bg(
                "client",
                [sys.executable, "-m", "dfagent.lab.synflood", "--dst", VIP4,
                 "--rate", str(self.flood_rate), "--seconds", str(self.seconds),
                 "--max", str(int(self.flood_rate * self.seconds) + 1), "--src-net", SPOOF_NET],
            )  # fmt: skip
            procs.append(flood)
            t0 = time.time()
            holder.send("churn", rate=self.rate, hold=self.hold, seconds=self.seconds,
                        interval=0.1, timeout=2.0)  # fmt: skip
            progress: list[dict[str, Any]] = []
            readers.append(_reader(holder.proc, progress, until_final=True))
            events = self._events(t0)
            readers[1].join(timeout=60)
            if not progress or "progress" in progress[-1]:
                raise LabError(f"{mode}: the connection holder gave no totals")
            totals = progress.pop()
            flood_out, _ = flood.communicate(timeout=60)
            out["flood"] = json.loads(flood_out.strip().splitlines()[-1])
            watch.terminate()
            watch.wait(timeout=10)
            readers[0].join(timeout=10)
            out.update(self._summary(mode, totals, t0, events, samples, progress))
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
            holder.close()
            self._lab_down()
        return out

    def _events(self, t0: float) -> list[dict[str, Any]]:
        """One next-hop change a second, in turn, until the run ends; when each was applied."""
        done: list[dict[str, Any]] = []
        for k, name in enumerate(itertools.cycle(EVENTS)):
            due = t0 + k + 1.0
            if due >= t0 + self.seconds:
                break
            time.sleep(max(0.0, due - time.time()))
            self._change(name)
            done.append({"t": round(time.time() - t0, 2), "event": name})
        time.sleep(max(0.0, t0 + self.seconds - time.time()))
        return done

    def _summary(
        self,
        mode: str,
        totals: dict[str, Any],
        t0: float,
        events: list[dict[str, Any]],
        raw: list[dict[str, Any]],
        progress: list[dict[str, Any]],
    ) -> dict[str, Any]:
        samples = []
        for s in raw:
            t = round(s["t"] - t0, 2)
            if t < 0:
                continue
            done = [p for p in progress if p["t"] <= t]
            last = done[-1] if done else {}
            pins = s["pins"] if mode.startswith("map") else s["marked"]
            samples.append({
                "t": t, "pins": pins, "ct": s["ct"], "evicted": s["evicted"],
                "failed": s["failed"], "slow_pins": s.get("slow_pins"),
                "early_drop": s["early_drop"], "rss_kb": s["rss_kb"],
                "broken": last.get("broken_held", 0) + last.get("broken_new", 0),
                "made": last.get("made", 0),
            })  # fmt: skip
        pins = [s["pins"] for s in samples if s["pins"] is not None]
        rss = [s["rss_kb"] for s in samples if s["rss_kb"] is not None]
        evicted = [s["evicted"] for s in samples if s["evicted"] is not None]
        res = {
            "seconds": self.seconds,
            "events": len(events),
            "made": totals["made"],
            "open_failed": totals["open_failed"],
            "attempted": totals["attempted"],
            "broken_held": totals["broken_held"],
            "broken_new": totals["broken_new"],
            "broken": totals["broken_held"] + totals["broken_new"],
            "broken_by": totals.get("broken_by", {}),
            "breaks": totals.get("breaks", []),  # the first 100: when, which, why
            "held_alive": totals["held_alive"],
            "peak_pins": max(pins) if pins else None,
            "evicted": evicted[-1] if evicted else None,
            "slow_pins": samples[-1]["slow_pins"] if samples else None,  # SYN→pin > 100 ms
            "rss_kb_start": rss[0] if rss else None,
            "rss_kb_end": rss[-1] if rss else None,
            "event_times": events,
            "samples": samples,
        }
        self.log(
            f"{mode}: {res['broken']} broken ({res['broken_held']} of {self.n} held, "
            f"{res['broken_new']} of {res['made']} new; by {res['broken_by']}), "
            f"{res['open_failed']} failed opens, "
            f"{res['events']} next-hop changes; peak pins {res['peak_pins']}, evicted "
            f"{res['evicted']}, pins later than 100 ms {res['slow_pins']}, "
            f"RSS {res['rss_kb_start']} → {res['rss_kb_end']} kB; "
            f"flood {self.flood_rate:g}/s"
        )
        return res

    def run(self, modes: list[str]) -> dict[str, Any]:
        return {
            "connections": self.n,
            "seconds": self.seconds,
            "rate": self.rate,
            "hold": self.hold,
            "flood_rate": self.flood_rate,
            "capacity": self.capacity,
            "modes": self.per_mode(modes, MODES, self.run_mode),
        }


def _reader(
    proc: subprocess.Popen[Any], into: list[dict[str, Any]], until_final: bool = False
) -> threading.Thread:
    """Collect a process's JSON lines in a thread (``until_final``: stop after the first
    line that is not a progress line)."""

    def run() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            try:
                item = json.loads(line)
            except ValueError:
                continue
            into.append(item)
            if until_final and "progress" not in item:
                return

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def format_table(r: dict[str, Any]) -> str:
    lines = [
        f"{r['seconds']:g} s: a next-hop change every second, {r['connections']} held "
        f"connections and {r['rate']:g} new/s (held {r['hold']:g} s), a request each every "
        f"100 ms; spoofed SYN flood {r['flood_rate']:g}/s; map mode's pin maps {r['capacity']}",
        f"{'mode':7} {'broken':>7} {'held':>9} {'new':>11} {'failed opens':>13} "
        f"{'peak pins':>10} {'evicted':>8} {'RSS start→end (MB)':>19}",
    ]
    for mode, m in r["modes"].items():
        rss = (
            f"{m['rss_kb_start'] / 1024:.1f} → {m['rss_kb_end'] / 1024:.1f}"
            if m["rss_kb_start"] is not None
            else "-"
        )
        lines.append(
            f"{mode:7} {m['broken']:>7} {m['broken_held']:>4}/{r['connections']:<4} "
            f"{m['broken_new']:>5}/{m['made']:<5} {m['open_failed']:>13} "
            f"{_dash(m['peak_pins']):>10} {_dash(m['evicted']):>8} {rss:>19}"
        )
    return "\n".join(lines)


def _dash(x: Any) -> str:
    return "-" if x is None else str(x)
