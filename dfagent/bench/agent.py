"""`dfagent bench agent`: the agent as operators run it (`dfagent run --config`), at scale.

On the router namespace of :class:`dfagent.bench.scale.ScaleLab` (4 /32 routes inside
``10.202.0.0/16`` × 4 next hops), in one run:

1. **memory** (map mode): the agent's RSS (process + children) with 0 pins (baseline), then
   with P pins (default 1,000,000). Each pin is a connection: a conntrack entry is loaded
   first (ESTABLISHED, no mark, as ``bench scale`` loads them), then its SYN is mirrored to
   the agent (GRE + ERSPAN II from a raw socket in the namespace, one session per next hop)
   and goes the real pin path: receiver → egress → micro-batches → the agent's loop →
   MapPinner (an nft map element, and the entry's conntrack mark). The sender keeps at most
   ``WINDOW`` SYNs ahead of the agent's pin counter (its metrics endpoint), so nothing is
   dropped and the time is the agent's pin rate. The maps are the config's default size
   (2,000,000 per family).
2. **flows latency**: ``dfagent flows --limit 100 --json`` (the CLI, a new process each
   call → gRPC → the agent) and the same request from a client in this process (the gRPC
   round trip alone), at 1,000 pins (baseline) and at P pins; median and p95.
3. **restart**: with R pins (default 100,000), map mode and kernel mode (its pins are
   conntrack marks: R entries carrying the agent's next-hop marks), the running agent is
   SIGKILLed and started again. *Ready* is the first answer to the API's ``Status``: the
   server is up before the loop starts, and the loop takes calls only after its first full
   pass (check and repair the datapath, observe routes, apply), so an answer means that
   pass is complete. Polled every 10 ms from this process. Also timed: until the agent's
   own pinned count (``Status.pinned``) equals the kernel's. Pins are counted in the kernel
   before the kill and after the restart (conntrack entries carrying the mark flag; map
   mode also the map's elements): lost = before − after.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from dfagent.bench.scale import ScaleLab, conntrack_max, flow, gateway, load_entries
from dfagent.lab.errors import LabError
from dfagent.lab.netns import ns_argv, run

METRICS_PORT = 9642  # inside the router namespace
WINDOW = 20_000  # SYNs the sender may be ahead of the agent's pins
CHUNK = 2_000  # SYNs per sendmmsg burst
RSS_TARGET_MB = 300
READY_TARGET_S = 1.0


class AgentLab(ScaleLab):
    """`dfagent run --config` on the scale lab's router (4 routes × 4 next hops)."""

    def __init__(self, mode: str, log: Callable[[str], None] = print) -> None:
        super().__init__(4, 4, log)
        self.mode = mode
        self.sock = str(self.dir / "dfagent.sock")
        self.config = self.dir / "dfagent.yaml"
        cfg: dict[str, Any] = {
            "vips": [{"prefix": "10.202.0.0/16", "mode": mode}],
            "linux": {"state_dir": str(self.dir / "state")},
            "nexthops": {f"n{j + 1}": gateway(j) for j in range(4)},
            "drain": {"actuator": "none"},
            "api": {"socket": self.sock},
            "metrics": {"address": f"127.0.0.1:{METRICS_PORT}"},
        }
        if mode == "mirror":  # session j+1 is the mirror of next hop j's egress
            sessions = {j + 1: f"n{j + 1}" for j in range(4)}
            cfg["mirror"] = {"sources": ["127.0.0.1"], "sessions": sessions}
        self.config.write_text(yaml.safe_dump(cfg))

    def start_run(self) -> None:
        argv = [sys.executable, "-m", "dfagent.cli.main", "run", "--config", str(self.config)]
        self.launch(argv, append=True, env=as_installed())

    def kill(self) -> None:
        assert self.agent is not None
        self.agent.send_signal(signal.SIGKILL)
        self.agent.wait(10)
        self.agent = None

    def status(self, timeout: float = 5.0) -> Any:
        from dfagent.api.client import Client

        with Client(self.sock, timeout=timeout) as c:
            return c.status()

    def wait_ready(self, timeout: float = 60.0) -> float:
        """Seconds from the start until the API answers Status (see the module's text)."""
        from dfagent.api.client import ClientError

        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                self.status(timeout=2.0)
                return time.monotonic() - self.started
            except ClientError:
                pass
            if self.agent is not None and self.agent.poll() is not None:
                raise LabError(f"the agent exited ({self.agent.returncode}):\n{self.log_text()}")
            time.sleep(0.01)
        raise LabError(f"the agent did not answer Status within {timeout}s:\n{self.log_text()}")

    def wait_counted(self, pins: int, timeout: float = 120.0) -> float:
        """Seconds from the start until the agent's own pinned count is ``pins``."""
        from dfagent.api.client import ClientError

        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with contextlib.suppress(ClientError):  # a slow answer (a busy loop): ask again
                if self.status().pinned == pins:
                    return time.monotonic() - self.started
            time.sleep(0.05)
        raise LabError(f"the agent did not count {pins} pins within {timeout}s")

    def nexthop_marks(self) -> list[int]:
        from dfagent.api.client import Client

        with Client(self.sock) as c:
            return [n.mark for n in c.list_nexthops() if n.family == 4]

    # ── what the kernel holds ───────────────────────────────────────────────────
    def marked_entries(self) -> int:
        """Conntrack entries carrying dfagent's mark flag (every pin has it)."""
        from dfagent.core.marks import MarkSpace

        flag = MarkSpace().flag
        argv = ["conntrack", "-L", "-f", "ipv4", "-m", f"{flag:#x}/{flag:#x}"]
        proc = subprocess.run(ns_argv(self.r, argv), capture_output=True, timeout=600)
        return proc.stdout.count(b"\n")

    def map_elements(self) -> int:
        """Elements of pin4 (a listing: seconds per 100,000)."""
        argv = ["nft", "-j", "list", "map", "inet", "dfagent", "pin4"]
        out = json.loads(run(ns_argv(self.r, argv), timeout=600))
        return sum(len(o["map"].get("elem", [])) for o in out["nftables"] if "map" in o)

    # ── the agent's memory ──────────────────────────────────────────────────────
    def rss(self) -> dict[str, float]:
        """MB: RSS of the agent and its children now, and the agent's peak (VmHWM)."""
        assert self.agent is not None
        pids = tree(self.agent.pid)
        now = sum(status_kb(p, "VmRSS") for p in pids)
        return {
            "rss_mb": round(now / 1024, 1),
            "peak_mb": round(status_kb(self.agent.pid, "VmHWM") / 1024, 1),
            "processes": len(pids),
        }

    # ── pins through the mirror path ────────────────────────────────────────────
    def mirror_pins(self, start: int, count: int) -> dict[str, Any]:
        """Load ``count`` unmarked conntrack entries, then mirror their SYNs to the agent."""
        ct_s = load_entries(self, count, start, [0])
        code = f"from dfagent.bench.agent import send_syns; send_syns({start}, {count})"
        out = run(ns_argv(self.r, [sys.executable, "-c", code]), timeout=1800)
        res: dict[str, Any] = json.loads(out.splitlines()[-1])
        res["conntrack_load_s"] = round(ct_s, 1)
        return res


def as_installed() -> dict[str, str]:
    """The environment for the processes timed: as on an installed system, Python uses (and
    writes) its bytecode caches (pip compiles them at install); a development shell's
    PYTHONDONTWRITEBYTECODE would make every start compile dfagent's modules again."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def tree(pid: int) -> list[int]:
    """``pid`` and its descendants."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*"):
            with contextlib.suppress(OSError):  # it ended meanwhile
                todo += [int(c) for c in (task / "children").read_text().split()]
    return out


def status_kb(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def pins_done() -> int:
    """Pins the agent has written or refused so far, from its metrics endpoint."""
    with urllib.request.urlopen(f"http://127.0.0.1:{METRICS_PORT}/metrics", timeout=5) as r:
        text = r.read().decode()
    return int(sum(float(ln.rsplit(" ", 1)[1]) for ln in text.splitlines()
                   if ln.startswith("dfagent_pins_total{")))  # fmt: skip


def send_syns(start: int, count: int) -> None:
    """Inside the router namespace: mirror the SYNs of flows ``start`` .. ``start+count-1``
    (session = next hop i % 4 + 1), keeping at most WINDOW ahead of the agent's pins; prints
    the figures as JSON. Run by :meth:`AgentLab.mirror_pins`."""
    from dfagent.lab.mirror_sender import MmsgBlaster, RawGreSender, mirrored_syn

    base = pins_done()
    t0 = time.monotonic()
    sent = errors = 0
    with RawGreSender("127.0.0.1") as tx:
        for first in range(start, start + count, CHUNK):
            pkts = []
            for i in range(first, min(first + CHUNK, start + count)):
                src, dst, sport, dport = flow(i)
                pkts.append(mirrored_syn("erspan2", "127.0.0.1", "127.0.0.1", src, dst,
                                         sport, dport, session=i % 4 + 1, outer=False))  # fmt: skip
            s, e = MmsgBlaster(tx.sock, "127.0.0.1", pkts).send(len(pkts))
            sent, errors = sent + s, errors + e
            while sent - (pins_done() - base) > WINDOW:
                time.sleep(0.1)
    end = time.monotonic() + 60
    done = pins_done() - base
    while done < sent and time.monotonic() < end:  # the last window
        time.sleep(0.05)
        done = pins_done() - base
    took = time.monotonic() - t0
    rate = round(done / max(took, 1e-9))
    out = {"sent": sent, "send_errors": errors, "pinned": done, "pin_s": round(took, 1)}
    print(json.dumps({**out, "pins_per_s": rate}))


def stats(xs: Sequence[float]) -> dict[str, float]:
    s = sorted(xs)
    p95 = s[min(len(s) - 1, round(0.95 * (len(s) - 1)))]
    return {"median_ms": round(statistics.median(s) * 1000, 1), "p95_ms": round(p95 * 1000, 1)}


def flows_latency(lab: AgentLab, calls: int) -> dict[str, Any]:
    """``dfagent flows --limit 100`` through the CLI (a process per call) and the gRPC call
    alone, ``calls`` times each; checks that 100 flows come back."""
    from dfagent.api.client import Client
    from dfagent.core.model import FlowFilter

    cli, rpc = [], []
    argv = [sys.executable, "-m", "dfagent.cli.main", "flows", "--limit", "100", "--json",
            "--socket", lab.sock]  # fmt: skip
    for _ in range(calls):
        t0 = time.monotonic()
        p = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False,
                           env=as_installed())  # fmt: skip
        cli.append(time.monotonic() - t0)
        if p.returncode != 0 or len(json.loads(p.stdout)["flows"]) != 100:
            raise LabError(f"dfagent flows --limit 100: exit {p.returncode}: {p.stderr[-300:]}")
    with Client(lab.sock, timeout=300) as c:
        for _ in range(calls):
            t0 = time.monotonic()
            page = c.list_flows(FlowFilter(), limit=100)
            rpc.append(time.monotonic() - t0)
            if len(page.flows) != 100:
                raise LabError(f"ListFlows limit 100 gave {len(page.flows)} flows")
    return {"cli": stats(cli), "grpc": stats(rpc)}


class AgentBench:
    def __init__(
        self,
        pins: int = 1_000_000,
        restart_pins: int = 100_000,
        calls: int = 7,
        modes: Sequence[str] = ("mirror", "kernel"),
        log: Callable[[str], None] = print,
    ) -> None:
        if pins < 1000:
            raise LabError("pins: at least 1000 (the flows baseline is 1,000 pins)")
        self.pins, self.restart_pins, self.calls = pins, restart_pins, calls
        self.modes, self.log = list(modes), log
        self.namespaces: list[str] = []  # every namespace a phase made (all removed after)

    def lab(self, mode: str) -> AgentLab:
        lab = AgentLab(mode, self.log)
        self.namespaces += [lab.r, lab.s]
        return lab

    def run(self) -> dict[str, Any]:
        with conntrack_max(int(max(self.pins, self.restart_pins) * 1.1) + 10_000):
            out: dict[str, Any] = {"pins": self.pins, **self.memory_and_flows()}
            out["restart"] = [self.restart(m) for m in self.modes]
        out["targets"] = {"rss_mb": RSS_TARGET_MB, "ready_s": READY_TARGET_S}
        return out

    def memory_and_flows(self) -> dict[str, Any]:
        lab = self.lab("mirror")
        try:
            lab.build()
            lab.start_run()
            lab.wait_ready()
            time.sleep(2)  # the start's own work settles
            base = lab.rss()
            self.log(f"0 pins: agent RSS {base['rss_mb']} MB")
            fill1 = lab.mirror_pins(0, 1000)
            self.settle(lab, 1000)
            flows_base = flows_latency(lab, self.calls)
            self.log(f"1,000 pins: flows --limit 100 {flows_base}")
            fill = lab.mirror_pins(1000, self.pins - 1000)
            self.log(f"{self.pins} pins written: {fill}")
            marked = self.settle(lab, self.pins)
            full = lab.rss()
            self.log(f"{self.pins} pins: agent RSS {full['rss_mb']} MB (peak {full['peak_mb']})")
            flows_full = flows_latency(lab, self.calls)
            self.log(f"{self.pins} pins: flows --limit 100 {flows_full}")
            after = lab.rss()
            return {
                "pin_map_size": 2_000_000,
                "rss_0": base,
                "rss_full": full,
                "rss_after_flows": after,
                "fill": {
                    "pinned": fill1["pinned"] + fill["pinned"],
                    "sent": fill1["sent"] + fill["sent"],
                    "pin_s": fill["pin_s"],
                    "pins_per_s": fill["pins_per_s"],
                    "conntrack_load_s": fill["conntrack_load_s"],
                    "marked_entries": marked,
                },
                "flows_1k": flows_base,
                "flows_full": flows_full,
            }
        finally:
            lab.teardown()

    def settle(self, lab: AgentLab, pins: int, timeout: float = 300) -> int:
        """Wait until every pinned connection carries its mark; returns how many do."""
        end = time.monotonic() + timeout
        n = lab.marked_entries()
        while n < pins and time.monotonic() < end:
            time.sleep(1)
            n = lab.marked_entries()
        if n < pins:
            raise LabError(f"{n} of {pins} conntrack entries carry a pin mark")
        return n

    def restart(self, mode: str) -> dict[str, Any]:
        lab = self.lab(mode)
        try:
            lab.build()
            lab.start_run()
            first_ready = lab.wait_ready()
            if mode == "mirror":
                lab.mirror_pins(0, self.restart_pins)
                self.settle(lab, self.restart_pins)
            else:
                load_entries(lab, self.restart_pins, 0, lab.nexthop_marks())
            before = lab.marked_entries()
            elems_before = lab.map_elements() if mode == "mirror" else None
            lab.kill()
            lab.start_run()
            ready = lab.wait_ready()
            parts = _ready_parts(lab.log_text())
            counted = lab.wait_counted(before)
            after = lab.marked_entries()
            elems_after = lab.map_elements() if mode == "mirror" else None
            res = {
                "mode": "map" if mode == "mirror" else "kernel",
                "pins": self.restart_pins,
                "empty_start_ready_s": round(first_ready, 3),
                "ready_s": round(ready, 3),
                # the agent's own account of the restart: first pass, and the process
                # before it (interpreter, imports, build: adopt the datapath)
                "first_pass_ms": parts[0],
                "before_first_pass_ms": parts[1],
                # the CPU the new process had used when ready: what a busy machine's wall
                # time cannot say (another session's load stretches the wall clock only)
                "ready_cpu_ms": parts[2],
                "counted_s": round(counted, 3),
                "pins_before": before,
                "pins_after": after,
                "lost": before - after,
                "map_elements_before": elems_before,
                "map_elements_after": elems_after,
            }
            self.log(f"restart, {res['mode']} mode, {before} pins: {_restart_line(res)}")
            return res
        finally:
            lab.teardown()


def format_table(r: dict[str, Any]) -> str:
    t = r["targets"]
    f = r["fill"]
    lines = [
        f"map mode, {r['pins']:,} pins through the mirror path ({f['pins_per_s']:,} pins/s, "
        f"{f['pin_s']} s; conntrack entries loaded in {f['conntrack_load_s']} s; "
        f"{f['marked_entries']:,} entries marked; maps sized {r['pin_map_size']:,})",
        f"agent RSS (+children): 0 pins {r['rss_0']['rss_mb']} MB, {r['pins']:,} pins "
        f"{r['rss_full']['rss_mb']} MB (peak {r['rss_full']['peak_mb']} MB; after the flows "
        f"calls {r['rss_after_flows']['rss_mb']} MB, peak {r['rss_after_flows']['peak_mb']} MB)"
        f"; target <= {t['rss_mb']} MB",
        f"flows --limit 100 (median / p95 ms)   {'1,000 pins':>16} {r['pins']:>10,} pins",
    ]
    for k, what in (("cli", "CLI (process per call)"), ("grpc", "gRPC call alone")):
        a, b = r["flows_1k"][k], r["flows_full"][k]
        lines.append(f"  {what:<34} {a['median_ms']:>7} / {a['p95_ms']:<7} "
                     f"{b['median_ms']:>7} / {b['p95_ms']}")  # fmt: skip
    lines.append(f"restart after SIGKILL (ready = Status answered after the first pass; "
                 f"target <= {t['ready_s']} s)")  # fmt: skip
    for x in r["restart"]:
        lines.append(f"  {x['mode']:<6} {x['pins_before']:>8,} pins: {_restart_line(x)}")
    return "\n".join(lines)


def _restart_line(x: dict[str, Any]) -> str:
    return (
        f"ready {x['ready_s']} s (process {x['before_first_pass_ms']} ms, first pass "
        f"{x['first_pass_ms']} ms, CPU {x['ready_cpu_ms']} ms; empty start "
        f"{x['empty_start_ready_s']} s), own count "
        f"{x['counted_s']} s, lost {x['lost']}"
    )


_READY = re.compile(
    r"ts=(\S+ \S+) \S+ \S+ event=ready first_pass_ms=([\d.]+) since_process_start_ms=(\d+)"
    r"(?: cpu_ms=(\d+))?"
)


class ReadyLine(NamedTuple):
    """The agent's ``ready`` log line (written after its first pass: dfagent.agent.agent)."""

    at: float  # wall clock of the line
    first_pass_ms: float
    before_first_pass_ms: float  # the process before the first pass
    cpu_ms: float | None  # CPU the process had used when ready (all threads)


def ready_lines(log: str) -> list[ReadyLine]:
    """Every ``ready`` line of an agent log, in order."""
    out = []
    for stamp, first, age, cpu in _READY.findall(log):
        at = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()
        before = round(float(age) - float(first), 1)
        out.append(ReadyLine(at, float(first), before, float(cpu) if cpu else None))
    return out


def _ready_parts(log: str) -> tuple[float | None, float | None, float | None]:
    """(first pass, process before it, CPU used) in ms, from the agent's last 'ready' line."""
    lines = ready_lines(log)
    if not lines:
        return None, None, None
    return lines[-1].first_pass_ms, lines[-1].before_first_pass_ms, lines[-1].cpu_ms
