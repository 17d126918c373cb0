"""Two routers, one set of pins: do connections survive moving between two pinning routers?

On the twin-lb lab (client → up, ECMP over lb1 and lb2 → servers s1..s4), for each mode on a
fresh lab: hold N connections (v4 and v6) with a request on each every 100 ms, then
(a) lb1 dies (every port down: the upstream moves all its flows to lb2) while s1 drains, and
(b) lb1 comes back (the upstream's set of routers changes again, moving flows back) while
s4 starts announcing. Broken = reset, silence (1 s) or an answer from another server, at any
round trip during an event or in the seconds after it converged.

Modes:
* ``ecmp``: no agent, no conntrackd (the lab's conntrackd services are stopped);
* ``kernel``: dfagent kernel mode on lb1 and lb2, their conntrack entries (marks included)
  shared by the lab's conntrackd (FTFW, entries injected straight into the peer's table);
* ``kernel-nosync``: the agents without conntrackd (the control: what the sync buys).

A mark names a next-hop slot on each router, so both agents must give each server the same
slot: they start from the same mark table (state file ``marks``, the servers in order,
v4 then v6, s4 included although it announces nothing yet). lb1's outage stays shorter
than the agents' ``--dead-hold``: a next hop forgotten by one agent would come back on a
new slot there, and the two tables would disagree.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dfagent.backends.frr.drain import FrrDrain
from dfagent.backends.linux.state import STATE_FILE
from dfagent.bench.pcc import VIP4, VIP6, Holder, PccBench, _dfagent
from dfagent.core.marks import SLOT_BASE, MarkSpace
from dfagent.lab import runner
from dfagent.lab.errors import LabError
from dfagent.lab.retry import wait_until

LAB = "twin-lb"
MODES = ("ecmp", "kernel", "kernel-nosync")
DEFAULT_MODES = ("ecmp", "kernel")
LBS = {"lb1": 2, "lb2": 3}  # lb → second octet of its server links (10.<n>.<s>.0/24)
UPLINK = {"eth2": "lb1", "eth3": "lb2"}  # up's port → lb
SERVERS = ("s1", "s2", "s3", "s4")
INITIAL = frozenset({"s1", "s2", "s3"})
CHUNK = 2.0  # seconds of traffic between convergence checks
SETTLE = 3.0  # seconds of traffic after an event converged
_STAT = re.compile(r"^(cache internal|external inject):\s*$")
_COUNT = re.compile(r"connections (created|updated):\s*(\d+)")


def server_addrs(lb: str, server: str) -> tuple[str, str]:
    """The v4 and v6 next hop ``lb`` has for ``server``."""
    n, s = LBS[lb], int(server[1:])
    return f"10.{n}.{s}.2", f"fd00:{n}:{s}::2"


def seed_marks(lb: str) -> dict[str, int]:
    """The mark table both agents start from: sN's v4 next hop on slot 2N-1, v6 on 2N."""
    marks = {}
    for i, server in enumerate(SERVERS):
        v4, v6 = server_addrs(lb, server)
        port = f"eth{int(server[1:]) + 1}"
        marks[f"4 {port} {v4}"] = SLOT_BASE | (2 * i + 1)
        marks[f"6 {port} {v6}"] = SLOT_BASE | (2 * i + 2)
    return marks


class TwinBench(PccBench):
    def __init__(self, connections: int, log: Callable[[str], None] = print) -> None:
        super().__init__(connections, fresh=0, log=log, rates=False)
        self.lab_name = self.base_lab = LAB
        self.agents: dict[str, subprocess.Popen[bytes]] = {}
        self.namespaces: list[str] = []  # every namespace a mode's lab made
        self.conntrackd_pids: set[int] = set()  # every conntrackd the labs started

    def _lab_up(self) -> None:
        super()._lab_up()
        assert self.state is not None
        self.namespaces += self.state.namespaces.values()
        self._note_conntrackd()

    def _note_conntrackd(self) -> None:
        assert self.state is not None
        self.conntrackd_pids |= {
            p.pid for p in self.state.processes if p.name == "conntrackd" and p.pid
        }

    # --- plumbing ---------------------------------------------------------------------
    def _lab_down(self) -> None:
        for proc in self.agents.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
        self.agents = {}
        super()._lab_down()

    def _agent_dir(self, lb: str) -> Path:
        assert self.state is not None
        return Path(self.state.run_dir) / f"agent-{lb}"

    def _start_agent(self, lb: str, seed: bool = True) -> None:
        """``lb``'s agent; ``seed``: from the shared mark table (else from its own state
        file, as a rebooted router's agent starts)."""
        assert self.state is not None
        d = self._agent_dir(lb)
        d.mkdir(parents=True, exist_ok=True)
        if seed:
            (d / STATE_FILE).write_text(json.dumps({"marks": seed_marks(lb)}))
        argv = _dfagent(
            "linux", "kernel", "--vip", f"{VIP4}/32", "--vip", f"{VIP6}/128",
            "--state-dir", str(d),
        )  # fmt: skip
        with open(Path(self.state.run_dir) / f"agent-{lb}.log", "ab") as log:
            self.agents[lb] = subprocess.Popen(
                runner.exec_argv(self.state, lb, argv), stdout=log, stderr=subprocess.STDOUT
            )

    def _wait_marks(self, lb: str, servers: frozenset[str], timeout: float = 60) -> None:
        """Until ``lb``'s agent has the seeded slot and a rule for each server's next hops."""
        want = {}
        for key, slot in seed_marks(lb).items():
            fam, _, gw = key.split()
            if any(gw in server_addrs(lb, s) for s in servers):
                want[(int(fam), gw)] = slot
        status = _dfagent(
            "linux", "status", "--json", "--no-count", "--state-dir", str(self._agent_dir(lb))
        )
        agent = self.agents[lb]

        def slots() -> dict[tuple[int, str], int]:
            if agent.poll() is not None:
                raise LabError(f"{lb}'s agent exited ({agent.returncode}): see its log")
            try:
                data = json.loads(self._on(lb, status, check=False) or "{}")
            except json.JSONDecodeError:
                return {}
            return {  # a next hop's table id is its slot
                (int(nh["family"]), str(nh["gateway"])): int(nh["table"])
                for nh in data.get("nexthops", [])
                if nh.get("table") is not None and nh.get("rule")
            }

        def ok(got: dict[tuple[int, str], int]) -> bool:
            return all(got.get(k) == v for k, v in want.items())

        wait_until(slots, timeout, 0.2, f"{lb}'s agent marks {want}", until=ok)

    def _stop_sync(self) -> None:
        assert self.state is not None
        for lb in LBS:
            runner.stop_daemon(self.state, lb, "conntrackd")

    def _ctd_stats(self, lb: str) -> dict[str, int]:
        """conntrackd -s: entries this lb sent (its own events) and injected (the peer's)."""
        assert self.state is not None
        conf = Path(self.state.run_dir) / lb / "conntrackd.conf"
        out = self._on(lb, ["conntrackd", "-C", str(conf), "-s"])
        got: dict[str, int] = {}
        section = ""
        for line in out.splitlines():
            m = _STAT.match(line.strip())
            if m:
                section = "sent" if m.group(1) == "cache internal" else "injected"
                continue
            c = _COUNT.search(line)
            if c and section:
                got[f"{section}_{c.group(1)}"] = int(c.group(2))
        return got

    def _marked_entries(self, lb: str) -> int:
        """Established VIP connections in ``lb``'s conntrack table that carry a dfagent mark."""
        space = MarkSpace()
        n = 0
        for fam in ("ipv4", "ipv6"):
            out = self._on(
                lb,
                ["conntrack", "-L", "-f", fam, "-p", "tcp", "--dport", "80", "--state",
                 "ESTABLISHED"],
                check=False,
            )  # fmt: skip
            for m in re.finditer(r"mark=(\d+)", out):
                n += space.slot(int(m.group(1))) is not None
        return n

    def _wait_entries(self, lb: str, want: int) -> None:
        def count() -> int:
            return self._marked_entries(lb)

        wait_until(count, 30, 0.5, f"{want} marked entries on {lb}", until=want.__le__)

    # --- routes -----------------------------------------------------------------------
    def _routes(self, node: str) -> tuple[frozenset[str], frozenset[str]]:
        """The VIP routes' members on ``node``: lbs (on up, by port) or servers (by gateway)."""
        out = []
        for fam, vip in (("-4", VIP4), ("-6", VIP6)):
            routes = json.loads(self._on(node, ["ip", "-j", fam, "route", "show", vip]) or "[]")
            found: set[str] = set()
            for r in routes:
                if r.get("protocol") != "bgp":
                    continue
                for nh in r.get("nexthops", [r]):
                    if node == "up":
                        if nh.get("dev") in UPLINK and "linkdown" not in nh.get("flags", []):
                            found.add(UPLINK[nh["dev"]])
                    else:
                        for s in SERVERS:
                            if nh.get("gateway") in server_addrs(node, s):
                                found.add(s)
            out.append(frozenset(found))
        return out[0], out[1]

    def _converged(self, lbs: frozenset[str], servers: frozenset[str]) -> bool:
        if self._routes("up") != (lbs, lbs):
            return False
        return all(self._routes(lb) == (servers, servers) for lb in lbs)

    # --- events -----------------------------------------------------------------------
    def _links(self, node: str, state: str) -> None:
        """Every port of ``node`` down or up at once (one `ip -batch`), the uplink first: a
        router that dies loses all its ports together; one whose server ports went first
        would, for a moment, send its pinned flows by the ECMP left to it."""
        assert self.lab is not None and self.state is not None
        ports = [lk.b.iface for lk in self.lab.topology.links if lk.b.node == node]
        ports += [lk.a.iface for lk in self.lab.topology.links if lk.a.node == node]
        batch = "".join(f"link set {port} {state}\n" for port in ports)
        self._on(node, ["ip", "-batch", "-"], stdin=batch)

    def _twin_event(
        self,
        holder: Holder,
        action: Callable[[], None],
        done: Callable[[], bool],
        timeout: float = 120,
    ) -> dict[str, Any]:
        """Traffic on every connection while ``action`` runs (in a thread) and until
        ``done()`` holds, then for SETTLE seconds more; broken connections over all of it."""
        broken = rounds = 0
        broken_from: Counter[str] = Counter()
        failed: list[BaseException] = []

        def run() -> None:
            try:
                action()
            except BaseException as exc:  # re-raised below, in the bench's thread
                failed.append(exc)

        worker = threading.Thread(target=run, daemon=True)
        t0 = time.monotonic()
        converged_s: float | None = None
        while True:
            holder.send("traffic", seconds=CHUNK, interval=0.1)
            if not worker.ident:
                time.sleep(0.3)
                worker.start()
            end = time.monotonic() + CHUNK - 0.3
            while converged_s is None and time.monotonic() < end:
                if not worker.is_alive() and not failed and done():
                    converged_s = time.monotonic() - t0
                time.sleep(0.1)
            res = holder.reply("traffic")
            broken += res["broken_now"]
            rounds += res["rounds"]
            broken_from.update(res.get("broken_from", {}))
            if failed:
                worker.join()
                raise failed[0]
            if converged_s is not None:
                break
            if time.monotonic() - t0 > timeout:
                raise LabError(f"{self.lab_name} did not converge within {timeout:g} s")
        res = holder.ask("traffic", seconds=SETTLE, interval=0.1)
        broken_from.update(res.get("broken_from", {}))
        return {
            "broken": broken + res["broken_now"],
            "rounds": rounds + res["rounds"],
            "alive": res["alive"],
            "converged_s": round(converged_s, 2),
            "by_server": res["by_server"],
            "broken_from": dict(sorted(broken_from.items())),
        }

    def _drain_s1(self) -> None:
        assert self.state is not None
        for lb in LBS:
            FrrDrain(runner.exec_argv(self.state, lb, ["vtysh"])).drain(server_addrs(lb, "s1"))

    def _uplink(self, lb: str, up: bool) -> None:
        """``lb``'s BGP sessions to the upstream: a booting router holds them down until its
        state is back (synced entries, the agent's tables), so it attracts no flow before."""
        no = "no " if up else ""
        n = lb[-1]
        self._vtysh(
            lb, "configure terminal", f"router bgp 6500{n}",
            f"{no}neighbor 10.0.{n}.1 shutdown", f"{no}neighbor fd00:0:{n}::1 shutdown",
        )  # fmt: skip

    def _lb1_dies(self, mode: str) -> None:
        """s1 drains on both lbs; once their ECMP sets have left s1, lb1 dies: its agent and
        conntrackd are killed and every port goes down (the upstream moves its flows to lb2,
        where only the synced marks keep the drained s1's connections on s1)."""
        assert self.state is not None
        self._drain_s1()
        wait_until(
            lambda: all(self._routes(lb) == (INITIAL - {"s1"},) * 2 for lb in LBS),
            30, 0.1, "both lbs' VIP routes without s1",
        )  # fmt: skip
        agent = self.agents.pop("lb1", None)
        if agent is not None:
            agent.kill()
            agent.wait()
        if mode == "kernel":
            proc = self.state.process("lb1", "conntrackd")
            if proc is not None and proc.pid:
                os.kill(proc.pid, signal.SIGKILL)
        self._links("lb1", "down")
        if mode == "kernel":
            # lb2 takes over lb1's entries, as a fail-over hook does on losing the peer: its
            # conntrackd re-reads its kernel table, so the entries lb1 had sent (injected
            # straight into that table, outside conntrackd's own cache) become lb2's and are
            # in the resync lb1 asks for when it boots
            conf = Path(self.state.run_dir) / "lb2" / "conntrackd.conf"
            self._on("lb2", ["conntrackd", "-C", str(conf), "-R"])

    def _lb1_back(self, mode: str, out: dict[str, Any]) -> None:
        """lb1 boots: an empty conntrack table and no dfagent rules (its agent's state file
        survives, as /var/lib/dfagent does), ports up with its uplink sessions held down;
        conntrackd resyncs from lb2 (kernel mode), the agent starts; then s4 announces and lb1
        rejoins the upstream's set."""
        assert self.state is not None and self.lab is not None
        self._uplink("lb1", up=False)
        for fam in ("ipv4", "ipv6"):
            self._on("lb1", ["conntrack", "-F", "-f", fam], check=False)
        if mode != "ecmp":
            state_dir = str(self._agent_dir("lb1"))
            self._on("lb1", _dfagent("linux", "cleanup", "--keep-state", "--state-dir", state_dir))
        self._links("lb1", "up")
        if mode == "kernel":
            runner.restart_service(self.state, self.lab, "lb1", "conntrackd")
            self._note_conntrackd()
            t0 = time.monotonic()
            want = self._marked_entries("lb2")
            self._wait_entries("lb1", want)
            out["resync"] = {
                "entries": self._marked_entries("lb1"),
                "seconds": round(time.monotonic() - t0, 2),
                **self._ctd_stats("lb1"),
            }
        if mode != "ecmp":
            self._start_agent("lb1", seed=False)
            self._wait_marks("lb1", INITIAL - {"s1"})
        self._announce_s4(True)
        self._uplink("lb1", up=True)

    def twin_mode(self, mode: str) -> dict[str, Any]:
        self._lab_up()
        assert self.state is not None
        holder = Holder(self.state)
        out: dict[str, Any] = {}
        try:
            if mode != "kernel":
                self._stop_sync()
            if mode != "ecmp":
                for lb in LBS:
                    self._start_agent(lb)
                for lb in LBS:
                    self._wait_marks(lb, INITIAL)
            before = {lb: self._ctd_stats(lb) for lb in LBS} if mode == "kernel" else {}
            opened = holder.ask("open", addrs=[VIP4, VIP6], port=80, count=self.n)
            out["opened"], out["open_failed"] = opened["opened"], opened["failed"]
            self.log(f"{mode}: {out['opened']} connections open {opened['by_server']}")
            if mode == "kernel":
                # every connection's entry, with its mark, on both lbs before anything moves
                for lb in LBS:
                    self._wait_entries(lb, out["opened"])
                sync = {}
                for lb in LBS:
                    now = self._ctd_stats(lb)
                    sync[lb] = {k: v - before[lb].get(k, 0) for k, v in now.items()}
                    sync[lb]["marked_entries"] = self._marked_entries(lb)
                out["sync"] = sync
                self.log(f"{mode}: conntrackd {sync}")
            both = frozenset(LBS)
            events = []
            ev = self._twin_event(
                holder,
                lambda: self._lb1_dies(mode),
                lambda: self._converged(both - {"lb1"}, INITIAL - {"s1"}),
            )
            events.append({"event": "lb1 dies while s1 drains", **ev})
            ev = self._twin_event(
                holder,
                lambda: self._lb1_back(mode, out),
                lambda: self._converged(both, frozenset({"s2", "s3", "s4"})),
            )
            events.append({"event": "lb1 back while s4 is added", **ev})
            if "resync" in out:
                self.log(f"{mode}: lb1's conntrackd resynced {out['resync']}")
            for e in events:
                self.log(
                    f"{mode}: {e['event']:28} broken {e['broken']:5}  alive {e['alive']:5}  "
                    f"converged {e['converged_s']} s  broken from {e['broken_from']}"
                )
            out["events"] = events
            out["broken_total"] = sum(e["broken"] for e in events)
        finally:
            holder.close()
            self._lab_down()
        return out

    def run(self, modes: list[str]) -> dict[str, Any]:
        return {
            "connections": self.n,
            "lab": LAB,
            "modes": self.per_mode(modes, MODES, self.twin_mode),
        }


def format_table(result: dict[str, Any]) -> str:
    lines = [
        f"{result['connections']} connections through twin-lb (up → lb1/lb2 → s1..s4), a "
        "request on each every 100 ms; broken per event",
        f"{'mode':14} {'lb1 dies + s1 drains':>21} {'lb1 back + s4 added':>20} {'total':>6}",
    ]
    notes = []
    for mode, r in result["modes"].items():
        ev = r["events"]
        lines.append(f"{mode:14} {ev[0]['broken']:21} {ev[1]['broken']:20} {r['broken_total']:6}")
        for lb, s in (r.get("sync") or {}).items():
            notes.append(
                f"{mode}: {lb} holds {s['marked_entries']} marked entries; its conntrackd "
                f"sent {s.get('sent_created', 0)} new + {s.get('sent_updated', 0)} updates, "
                f"injected {s.get('injected_created', 0)} new + "
                f"{s.get('injected_updated', 0)} updates from the peer"
            )
        if "resync" in r:
            rs = r["resync"]
            notes.append(
                f"{mode}: lb1 rebooted, resynced {rs['entries']} marked entries from lb2 in "
                f"{rs['seconds']} s"
            )
    return "\n".join(lines + notes)
