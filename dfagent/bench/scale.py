"""VIPs at operator scale: install time, idle CPU and change latency of kernel mode.

Each case builds a router namespace with one veth to a server namespace; the server side
carries N addresses (the next hops, permanent neighbours on the router), and the router
announces V /32 routes inside ``10.202.0.0/16``, each a multipath route over all N next
hops. The agent runs ``dfagent linux kernel --vip 10.202.0.0/16`` in the router namespace
(one VIP prefix covering V routes: V × N table routes).

Figures per case:

* install: from starting the agent to its log saying every table route is written;
* idle CPU: the agent and its children (``conntrack``), user + system time over a window
  with nothing changing, in % of one core;
* change latency: a new /32 announced inside the VIP, from the main-table notification to
  the last of its N table routes (both seen on one rtnetlink socket in the router
  namespace);
* pinned: V=4, N=4 with P conntrack entries carrying dfagent marks (``conntrack -R``
  loads ~70 k/s; the agent is restarted over them, adopting its pins, so its census counts
  them at once), idle CPU over the window, plus the cost and interval of the agent's census
  (its full count; amortized = window CPU + census CPU / census interval).

The first case is the baseline (50 × 8, empty conntrack table), measured in the same run.
``nf_conntrack_max`` is global on this kernel (a namespace may not raise it): it is raised
for the pinned phase when too small, and restored.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from dfagent.lab.errors import LabError
from dfagent.lab.netns import add_netns, add_veth, delete_netns, ns_argv, run

VIP = "10.202.0.0/16"
CT_MAX = "/proc/sys/net/netfilter/nf_conntrack_max"
TICK = os.sysconf("SC_CLK_TCK")
_WRITTEN = re.compile(r"event=tables-written .*table_routes=(\d+) ms=([\d.]+)")
_CENSUS = re.compile(
    r"event=pins-counted entries=(\d+) ms=([\d.]+)(?: \S+)*? next_census_s=([\d.]+)"
)


def route_dst(i: int) -> str:
    return f"10.202.{(i + 1) >> 8}.{(i + 1) & 255}"


def flow(i: int) -> tuple[str, str, int, int]:
    """The i-th test connection toward the first four routes: (src, dst, sport, dport)."""
    src = f"10.{100 + (i >> 16)}.{(i >> 8) & 255}.{i & 255}"
    return src, route_dst(i % 4), 1024 + i % 60000, 80


def gateway(j: int) -> str:
    return f"10.250.{1 + (j >> 8)}.{(j & 255) + 1}"


class ScaleLab:
    """Router + server namespaces, V routes × N next hops, and the agent; always removed."""

    def __init__(self, vips: int, nexthops: int, log: Callable[[str], None] = print) -> None:
        self.v, self.n = vips, nexthops
        self.log = log
        run_id = secrets.token_hex(3)
        self.r, self.s = f"dfs-{run_id}-r", f"dfs-{run_id}-s"
        self.dir = Path(tempfile.mkdtemp(prefix=f"dfs-{run_id}-"))
        self.agent: subprocess.Popen[bytes] | None = None
        self.agent_log = self.dir / "agent.log"
        self.started = 0.0

    # ── the namespaces ──────────────────────────────────────────────────────────
    def build(self) -> None:
        add_netns(self.r)
        add_netns(self.s)
        add_veth(self.r, "r0", self.s, "s0")
        run(["ip", "-n", self.r, "addr", "add", "10.250.0.1/16", "dev", "r0"])
        mac = json.loads(run(["ip", "-n", self.s, "-j", "link", "show", "s0"]))[0]["address"]
        batch_s, batch_r = [], []
        for j in range(self.n):
            batch_s.append(f"addr add {gateway(j)}/16 dev s0")
            batch_r.append(f"neigh replace {gateway(j)} lladdr {mac} dev r0 nud permanent")
        for i in range(self.v):
            batch_r.append(f"route add {route_dst(i)}/32 {self.hops(self.n)}")
        self.batch(self.s, batch_s)
        self.batch(self.r, batch_r)

    def hops(self, n: int) -> str:
        return " ".join(f"nexthop via {gateway(j)} dev r0" for j in range(n))

    def batch(self, ns: str, lines: Sequence[str]) -> None:
        if not lines:
            return
        path = self.dir / f"batch-{ns}"
        path.write_text("\n".join(lines) + "\n")
        run(["ip", "-n", ns, "-batch", str(path)], timeout=120)

    def teardown(self) -> None:
        self.stop_agent()
        for ns in (self.r, self.s):
            with contextlib.suppress(LabError):
                delete_netns(ns)
        shutil.rmtree(self.dir, ignore_errors=True)

    # ── the agent ───────────────────────────────────────────────────────────────
    def start_agent(self, *extra: str, vip: str = VIP) -> None:
        argv = [sys.executable, "-m", "dfagent.cli.main", "linux", "kernel", "--vip", vip,
                "--state-dir", str(self.dir / "state"), *extra]  # fmt: skip
        self.launch(argv)

    def launch(
        self, argv: Sequence[str], append: bool = False, env: dict[str, str] | None = None
    ) -> None:
        """Start ``argv`` (an agent) in the router namespace, its output in the agent log."""
        self.started = time.monotonic()
        with open(self.agent_log, "ab" if append else "wb") as out:
            self.agent = subprocess.Popen(ns_argv(self.r, argv), stdout=out, stderr=out, env=env)

    def stop_agent(self) -> None:
        if self.agent is None:
            return
        self.agent.terminate()
        try:
            self.agent.wait(15)
        except subprocess.TimeoutExpired:
            self.agent.kill()
            self.agent.wait(5)
        self.agent = None

    def log_text(self) -> str:
        return self.agent_log.read_text(errors="replace") if self.agent_log.exists() else ""

    def wait_log(self, pattern: re.Pattern[str], pred: Callable[[re.Match[str]], bool],
                 timeout: float) -> re.Match[str]:  # fmt: skip
        """The first log line matching ``pattern`` for which ``pred`` holds."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for m in pattern.finditer(self.log_text()):
                if pred(m):
                    return m
            if self.agent is not None and self.agent.poll() is not None:
                raise LabError(f"the agent exited ({self.agent.returncode}):\n{self.log_text()}")
            time.sleep(0.05)
        raise LabError(f"timed out after {timeout}s waiting for {pattern.pattern!r}")

    def wait_installed(self, routes: int, timeout: float = 120) -> tuple[float, float]:
        """(seconds from start until every table route is written, the agent's own ms)."""
        m = self.wait_log(_WRITTEN, lambda m: int(m.group(1)) >= routes, timeout)
        return time.monotonic() - self.started, float(m.group(2))

    def cpu_seconds(self) -> float:
        """User + system time of the agent and its reaped children so far."""
        assert self.agent is not None
        with open(f"/proc/{self.agent.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return sum(int(x) for x in fields[11:15]) / TICK  # utime stime cutime cstime

    def idle_cpu(self, window: float) -> float:
        """% of one core the agent used over ``window`` seconds."""
        c0, t0 = self.cpu_seconds(), time.monotonic()
        time.sleep(window)
        return round(100 * (self.cpu_seconds() - c0) / (time.monotonic() - t0), 2)

    def table_routes(self) -> int:
        out = run(["ip", "-n", self.r, "route", "show", "table", "all", "proto", "223"])
        return len(out.splitlines())

    # ── change latency ──────────────────────────────────────────────────────────
    def change_latency(self, changes: int) -> list[float]:
        """Milliseconds from each new /32's notification to its last table route."""
        changes = min(changes, 250)
        code = (f"from dfagent.bench.scale import probe; probe({self.n}, "
                f"{changes}, {self.hops(self.n)!r})")  # fmt: skip
        out = run(ns_argv(self.r, [sys.executable, "-c", code]), timeout=60 + 5 * changes)
        return [float(x) for x in json.loads(out)]


def probe(nexthops: int, changes: int, hops: str) -> None:
    """Inside the router namespace: announce ``changes`` new /32s one at a time, print the
    latencies (ms) as JSON. Run by :meth:`ScaleLab.change_latency`."""
    from dfagent.backends.linux.rtnl import RtnlEvents
    from dfagent.core.marks import RT_PROTO, is_dfagent_table

    ev = RtnlEvents()
    out: list[float] = []
    try:
        for k in range(changes):
            dst = f"10.202.255.{1 + k}"  # a block no case fills (< 65,000 routes)
            subprocess.run(["ip", "route", "add", f"{dst}/32", *hops.split()], check=True)
            t0 = None
            seen = 0
            end = time.monotonic() + 10
            while seen < nexthops and time.monotonic() < end:
                import select

                select.select([ev], [], [], 0.5)
                now = time.monotonic()
                for e in ev.read():
                    r = e.route
                    if e.kind != "route" or e.deleted or r is None or r.prefix != f"{dst}/32":
                        continue
                    if r.table == 254 and t0 is None:
                        t0 = now
                    elif is_dfagent_table(r.table) and r.protocol == RT_PROTO:
                        seen += 1
            if t0 is None or seen < nexthops:
                raise SystemExit(f"{dst}: {seen} of {nexthops} table routes within 10 s")
            out.append(round((time.monotonic() - t0) * 1000, 1))
            time.sleep(0.3)
    finally:
        ev.close()
    print(json.dumps(out))


@contextlib.contextmanager
def conntrack_max(at_least: int) -> Iterator[None]:
    """Raise the (global) conntrack limit for the run, restore it afterwards."""
    before = int(Path(CT_MAX).read_text())
    if before < at_least:
        Path(CT_MAX).write_text(str(at_least))
    try:
        yield
    finally:
        if before < at_least:
            Path(CT_MAX).write_text(str(before))


def load_entries(lab: ScaleLab, count: int, start: int, marks: Sequence[int]) -> float:
    """Insert ``count`` ESTABLISHED entries carrying ``marks`` in turn; returns seconds."""
    rows = ((*flow(i), marks[i % len(marks)]) for i in range(start, start + count))
    return load_conntrack(lambda argv: ns_argv(lab.r, argv), lab.dir / "ct.txt", rows)


def load_conntrack(
    exec_argv: Callable[[list[str]], list[str]],
    path: Path,
    rows: Iterable[tuple[str, str, int, int, int]],
) -> float:
    """Insert ESTABLISHED TCP entries ``(src, dst, sport, dport, mark)`` with ``conntrack -R``
    (``exec_argv`` places it in the router's namespace; ``path`` is its scratch file);
    returns seconds. Loaded in chunks: one file per 100,000 entries."""
    t0 = time.monotonic()
    chunk = 100_000
    it = iter(rows)
    while batch := list(itertools.islice(it, chunk)):
        with open(path, "w") as f:
            for src, dst, sport, dport, mark in batch:
                f.write(
                    f"-I -p tcp -s {src} -d {dst} --sport {sport}"
                    f" --dport {dport} -t 7200 --state ESTABLISHED -m {mark}\n"
                )
        proc = subprocess.run(exec_argv(["conntrack", "-R", str(path)]),
                              capture_output=True, timeout=600)  # fmt: skip
        if proc.returncode != 0:
            raise LabError(f"conntrack -R failed: {proc.stderr.decode(errors='replace')[-300:]}")
    return time.monotonic() - t0


class ScaleBench:
    def __init__(
        self,
        cases: Sequence[tuple[int, int]] = ((50, 8), (200, 16), (1000, 32)),
        pinned: Sequence[int] = (0, 262_144, 1_000_000),
        window: float = 30.0,
        changes: int = 10,
        log: Callable[[str], None] = print,
    ) -> None:
        self.cases, self.pinned = list(cases), sorted(pinned)
        self.window, self.changes, self.log = window, changes, log

    def run(self) -> dict[str, Any]:
        out: dict[str, Any] = {"window_s": self.window, "cases": [], "pinned": []}
        for v, n in self.cases:
            out["cases"].append(self.case(v, n))
        if self.pinned:
            out["pinned"] = self.pinned_phase()
        base = out["cases"][0] if out["cases"] else None
        if base:
            out["baseline"] = f"{base['vips']}x{base['nexthops']}"
        return out

    def case(self, v: int, n: int) -> dict[str, Any]:
        lab = ScaleLab(v, n, self.log)
        try:
            lab.build()
            lab.start_agent()
            install_s, apply_ms = lab.wait_installed(v * n)
            time.sleep(3)  # the start's own work (census, include file) settles
            idle = lab.idle_cpu(self.window)
            routes = lab.table_routes()
            lat = lab.change_latency(self.changes) if self.changes else []
            res = {
                "vips": v,
                "nexthops": n,
                "table_routes": routes,
                "install_s": round(install_s, 2),
                "apply_ms": apply_ms,
                "idle_cpu_pct": idle,
                "change_ms": lat,
                "change_ms_median": round(statistics.median(lat), 1) if lat else None,
                "change_ms_max": max(lat) if lat else None,
            }
            self.log(f"{v} VIPs x {n}: {res['table_routes']} table routes, installed in "
                     f"{res['install_s']} s, idle {idle} % of a core, change "
                     f"{res['change_ms_median']} ms (max {res['change_ms_max']})")  # fmt: skip
            return res
        finally:
            lab.teardown()

    def pinned_phase(self) -> list[dict[str, Any]]:
        from dfagent.core.marks import SLOT_BASE, MarkSpace

        space = MarkSpace()
        marks = [space.mark(SLOT_BASE | i) for i in range(1, 5)]
        lab = ScaleLab(4, 4, self.log)
        out = []
        try:
            with conntrack_max(int(max(self.pinned) * 1.1) + 1000):
                lab.build()
                lab.start_agent()
                lab.wait_installed(16)
                loaded = 0
                for p in self.pinned:
                    load_s = load_entries(lab, p - loaded, loaded, marks) if p > loaded else 0.0
                    loaded = p
                    # a restart counts them at once (the next census could be minutes away);
                    # the window starts after that count
                    lab.stop_agent()
                    lab.start_agent()
                    m = lab.wait_log(_CENSUS, lambda m, p=p: int(m.group(1)) >= p, 600)  # type: ignore[misc]
                    time.sleep(3)  # the first passes after the start
                    idle = lab.idle_cpu(self.window)
                    census_s, every = float(m.group(2)) / 1000, float(m.group(3))
                    amortized = round(idle + 100 * census_s / max(every, 1e-9), 2)
                    res = {
                        "pinned": p,
                        "load_s": round(load_s, 1),
                        "idle_cpu_pct": idle,
                        "census_s": round(census_s, 2),
                        "census_every_s": every,
                        "amortized_cpu_pct": amortized,
                    }
                    self.log(f"{p} pinned: idle {idle} % of a core; census {res['census_s']} s "
                             f"every {every} s; amortized {amortized} %")  # fmt: skip
                    out.append(res)
        finally:
            lab.teardown()
        return out


def format_table(result: dict[str, Any]) -> str:
    lines = [f"kernel mode, one VIP prefix covering V /32 routes x N next hops; idle CPU over "
             f"{result['window_s']} s (agent + children, % of one core); baseline "
             f"{result.get('baseline', '-')}",
             f"{'VIPs':>5} {'NHs':>4} {'routes':>7} {'install s':>9} {'idle %':>7} "
             f"{'vs base':>7} {'change ms (median/max)':>22}"]  # fmt: skip
    base = result["cases"][0]["idle_cpu_pct"] if result["cases"] else None
    for c in result["cases"]:
        ratio = f"{c['idle_cpu_pct'] / base:.1f}x" if base else "-"
        lat = f"{c['change_ms_median']}/{c['change_ms_max']}" if c["change_ms"] else "-"
        lines.append(f"{c['vips']:5} {c['nexthops']:4} {c['table_routes']:7} "
                     f"{c['install_s']:9} {c['idle_cpu_pct']:7} {ratio:>7} {lat:>22}")  # fmt: skip
    if result["pinned"]:
        lines.append(f"{'pinned':>9} {'idle %':>7} {'census s':>8} {'every s':>8} "
                     f"{'amortized %':>11}")  # fmt: skip
        for p in result["pinned"]:
            lines.append(f"{p['pinned']:9} {p['idle_cpu_pct']:7} {p['census_s']:8} "
                         f"{p['census_every_s']:8} {p['amortized_cpu_pct']:11}")  # fmt: skip
    return "\n".join(lines)
