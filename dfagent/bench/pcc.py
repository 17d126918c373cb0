"""The broken-connection benchmark (per-connection consistency) on the resilient-ecmp lab.

For each mode, on a fresh lab: open N long-lived TCP connections (v4 and v6) from the client
to the VIP, then apply the event sequence — drain s1, s4 starts announcing, s2's BGP session
goes down while s2 keeps serving, undrain s1. Every held connection carries a request every
100 ms from just before each event until after it settled (broken = a reset, no answer
within a second, or a different server answered; a connection counts once, when it breaks).
Three groups of connections are held and reported apart:
* ``initial``: the N opened before the first event;
* ``after``: opened after each event (e.g. landing on s4), then held through the later ones;
* ``during``: opened at a steady rate *while* each change is applied (from just before the
  change until the routes and the agent have it): the race between a SYN and its pin.

Resilient mode is the "ideal routing daemon": the bench edits the resilient group's members
itself at each event (no routing daemon here does).

Modes: `ecmp` (plain Linux multipath, no dfagent), `resilient` (a Linux resilient nexthop
group, the events applied to its members), `kernel` (dfagent kernel mode on lb), `map`
(dfagent map mode fed by a mirror shim on its own node, linked to lb by a veth: see
lab/mirror_node.py), `eos` (on the lab's EOS flavour, resilient-ecmp-eos: lb is an Arista
switch, the eAPI test switch's DirectFlow flows steer its forwarding and its monitor sessions
mirror the SYNs, agents with the EOS backend pin over eAPI; see bench/pcc_eos.py).

Topologies: `symmetric` (the resilient-ecmp lab: lb sees both directions) and `asymmetric`
(the resilient-ecmp-dsr lab: the servers answer the client directly, lb sees only the
client → server half; the agent runs with `--one-direction`).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dfagent.backends.frr.drain import FrrDrain
from dfagent.bench.pcc_eos import LAB as EOS_LAB
from dfagent.bench.pcc_eos import EosLab
from dfagent.lab import checks, mirror_node, runner, spec
from dfagent.lab.errors import LabError
from dfagent.lab.retry import wait_until
from dfagent.lab.state import LabState

LAB = "resilient-ecmp"
# topology → (lab, extra agent options)
TOPOLOGIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "symmetric": (LAB, ()),
    "asymmetric": ("resilient-ecmp-dsr", ("--one-direction",)),
}
VIP4, VIP6, PORT = "1.1.1.1", "2001:db8::1", 80
SERVERS = {
    f"s{n}": (f"10.2.{n}.2", f"fd00:2:{n}::2", f"eth{n + 1}", 65100 + n) for n in (1, 2, 3, 4)
}
MODES = ("ecmp", "resilient", "kernel", "map")
# kernel / map mode with pins in conntrack even on the asymmetric topology (the failure the
# --one-direction option fixes, kept measurable); on the symmetric one they equal kernel / map
CONNTRACK_MODES = ("kernel-ct", "map-ct")
# the EOS backend against the eAPI test switch's lab flavour (symmetric topology only)
EOS_MODES = ("eos",)
ALL_MODES = MODES + CONNTRACK_MODES + EOS_MODES
# (event, servers in the ECMP set afterwards)
EVENTS: tuple[tuple[str, frozenset[str]], ...] = (
    ("drain s1", frozenset({"s2", "s3"})),
    ("s4 announces", frozenset({"s2", "s3", "s4"})),
    ("s2 BGP down", frozenset({"s3", "s4"})),
    ("undrain s1", frozenset({"s1", "s3", "s4"})),
)
INITIAL = frozenset({"s1", "s2", "s3"})
GROUPS = ("initial", "after", "during")
LABELS = {"resilient": "ideal routing daemon"}  # the bench edits the group: not a real daemon
AGENT_SETTLE = 2.0  # seconds
BEFORE, SETTLE = 0.5, 1.0  # seconds of traffic before each change, and once it is in place
# The rate baseline most routers already pay: conntrack switched on by one stateful rule.
CONNTRACK_ONLY = """table inet dfagent_bench_ct {
  chain pre { type filter hook prerouting priority -150; ct state new counter; }
}
"""
# Nexthop object ids for the resilient mode, far above the ids zebra allocates.
NH_BASE = {4: 90010, 6: 90020}
NH_GROUP = {4: 90200, 6: 90201}
Log = Callable[[str], None]


@dataclass
class ModeResult:
    mode: str
    opened: int = 0
    open_failed: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)
    pins: int | None = None  # map mode: flows in the pin maps at the end
    pinned_by_agent: dict[str, int] | None = None  # eos: each agent's pins at the end

    @property
    def broken_total(self) -> int:
        return sum(e["broken"] for e in self.events)

    def groups(self) -> dict[str, dict[str, int]]:
        """Per group: connections opened (held) and broken over all events."""
        opened = {
            "initial": self.opened,
            "after": sum(sum(e["fresh"].values()) for e in self.events),
            "during": sum(sum(e["during"].values()) for e in self.events),
        }
        broken = {g: sum(e["groups"][g]["broken"] for e in self.events) for g in GROUPS}
        # attempts that never answered once (reset or no answer): never held, so not broken;
        # during a change that is the SYN→pin race's other face (see docs/kernel-mode.md)
        failed = {
            "initial": self.open_failed,
            "after": sum(e["fresh_errors"] for e in self.events),
            "during": sum(e["during_failed"] for e in self.events),
        }
        return {
            g: {"opened": opened[g], "broken": broken[g], "failed_to_open": failed[g]}
            for g in GROUPS
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": LABELS.get(self.mode, self.mode),
            "opened": self.opened,
            "open_failed": self.open_failed,
            "events": self.events,
            "broken_total": self.broken_total,
            "groups": self.groups(),
            **({"pins": self.pins} if self.pins is not None else {}),
            **({"pinned_by_agent": self.pinned_by_agent} if self.pinned_by_agent else {}),
        }


class Holder:
    """The connection holder (dfagent.lab.conns) running in the client namespace."""

    def __init__(self, state: LabState, node: str = "client"):
        argv = runner.exec_argv(state, node, [sys.executable, "-m", "dfagent.lab.conns"])
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )

    def ask(self, cmd: str, **kw: Any) -> dict[str, Any]:
        self.send(cmd, **kw)
        return self.reply(cmd)

    def send(self, cmd: str, **kw: Any) -> None:
        """Start a command (e.g. ``traffic``) and do other things before :meth:`reply`."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"cmd": cmd, **kw}) + "\n")
        self.proc.stdin.flush()

    def reply(self, cmd: str = "") -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise LabError(f"connection holder died during {cmd!r}")
        return dict(json.loads(line))

    def close(self) -> None:
        with contextlib.suppress(LabError, BrokenPipeError, OSError):
            self.ask("quit")
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class PccBench:
    def __init__(
        self,
        connections: int,
        fresh: int = 60,
        log: Log = print,
        topology: str = "symmetric",
        rates: bool | None = None,
        eos_agents: str = "servers",
        during_rate: float = 40.0,
    ):
        self.topology = topology
        self.lab_name, self.agent_opts = TOPOLOGIES[topology]
        self.base_lab = self.lab_name  # eos modes run on its EOS flavour (pcc_eos.LAB)
        # the new-connection rate is measured on the symmetric lab only, unless asked
        self.measure_rates = topology == "symmetric" if rates is None else rates
        self.n = connections
        self.fresh = fresh
        self.during_rate = during_rate  # new connections/s while each change is applied
        self.log = log
        self.state: LabState | None = None
        self.lab: spec.Lab | None = None
        self.agent: subprocess.Popen[bytes] | None = None
        self.shim: subprocess.Popen[bytes] | None = None
        self.eos_agents = eos_agents
        self.eos: EosLab | None = None
        self.rates: dict[str, float] = {}

    # --- lab plumbing -------------------------------------------------------------------
    def _on(self, node: str, argv: list[str], check: bool = True, stdin: str | None = None) -> str:
        assert self.state is not None
        proc = subprocess.run(
            runner.exec_argv(self.state, node, argv),
            capture_output=True,
            text=True,
            timeout=60,
            input=stdin,
        )
        if check and proc.returncode != 0:
            raise LabError(f"{node}: {' '.join(argv)}: {(proc.stderr or proc.stdout).strip()}")
        return proc.stdout

    def _vtysh(self, node: str, *commands: str) -> None:
        argv = ["vtysh"]
        for c in commands:
            argv += ["-c", c]
        out = self._on(node, argv)
        if "% " in out:
            raise LabError(f"{node}: vtysh {commands}: {out.strip()}")

    def _lab_up(self) -> None:
        """The lab, converged; on any failure (a stop included) it is taken down again."""
        self.lab = spec.load(self.lab_name)
        runner.down(self.lab_name)
        try:
            self.state = runner.up(self.lab, log=False)
            results = checks.run_checks(self.state, self.lab)
            failed = [r for r in results if not r.ok]
            if failed or len(results) != len(self.lab.checks):
                raise LabError(
                    f"{self.lab_name} did not converge: {failed[0].name}: {failed[0].detail}"
                )
        except BaseException:
            self._lab_down()
            raise

    def _lab_down(self) -> None:
        if self.eos is not None:
            self.eos.stop()
            self.eos = None
        for proc in (self.agent, self.shim):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
        self.agent = self.shim = None
        runner.down(self.lab_name)  # the mirror node with the rest: it is a node of the run
        self.state = None

    # --- routes -------------------------------------------------------------------------
    def _bgp_servers(self) -> tuple[frozenset[str], frozenset[str]]:
        """Servers in lb's BGP-installed VIP routes, v4 by gateway, v6 by interface."""
        by_gw = {v[0]: s for s, v in SERVERS.items()}
        by_dev = {v[2]: s for s, v in SERVERS.items()}
        out = []
        for fam, vip, key, index in (("-4", VIP4, "gateway", by_gw), ("-6", VIP6, "dev", by_dev)):
            routes = json.loads(self._on("lb", ["ip", "-j", fam, "route", "show", vip]) or "[]")
            found: set[str] = set()
            for r in routes:
                if r.get("protocol") != "bgp":
                    continue
                for nh in r.get("nexthops", [r]):
                    if nh.get(key) in index:
                        found.add(index[nh[key]])
            out.append(frozenset(found))
        return out[0], out[1]

    def _wait_servers(self, want: frozenset[str], timeout: float = 30) -> None:
        wait_until(
            self._bgp_servers,
            timeout,
            0.2,
            f"lb's v4 and v6 VIP routes via {sorted(want)} (last: v4, v6)",
            until=(want, want).__eq__,
        )

    # --- events -------------------------------------------------------------------------
    def _drain(self) -> FrrDrain:
        assert self.state is not None
        return FrrDrain(runner.exec_argv(self.state, "lb", ["vtysh"]))

    def _apply(self, event: str, mode: str, members: frozenset[str]) -> None:
        if event == "drain s1":
            self._drain().drain(SERVERS["s1"][:2])
        elif event == "undrain s1":
            self._drain().undrain(SERVERS["s1"][:2])
        elif event == "s4 announces":
            self._announce_s4(True)
        elif event == "s2 BGP down":
            v4, v6, _, asn = SERVERS["s2"]
            self._vtysh(
                "s2", "configure terminal", f"router bgp {asn}",
                f"neighbor {v4[:-1]}1 shutdown", f"neighbor {v6[:-1]}1 shutdown",
            )  # fmt: skip
        if mode == "resilient":
            self._resilient_members(members)

    def _announce_s4(self, announce: bool) -> None:
        """s4 announces the VIPs (joins the ECMP set), or withdraws them."""
        no = "" if announce else "no "
        self._vtysh(
            "s4", "configure terminal", f"router bgp {SERVERS['s4'][3]}",
            "address-family ipv4 unicast", f"{no}network {VIP4}/32", "exit-address-family",
            "address-family ipv6 unicast", f"{no}network {VIP6}/128",
        )  # fmt: skip

    # --- modes --------------------------------------------------------------------------
    def _resilient_setup(self) -> None:
        for name, (v4, v6, dev, _) in SERVERS.items():
            n = int(name[1:])
            for fam, addr in ((4, v4), (6, v6)):
                nh_id = str(NH_BASE[fam] + n)
                self._on("lb", ["ip", "nexthop", "add", "id", nh_id, "via", addr, "dev", dev])
        self._resilient_members(INITIAL, create=True)
        # Metric 10 beats the BGP route's 20: the group carries the traffic, FRR keeps running.
        for fam, vip in ((4, f"{VIP4}/32"), (6, f"{VIP6}/128")):
            grp = str(NH_GROUP[fam])
            self._on("lb", ["ip", f"-{fam}", "route", "add", vip, "nhid", grp, "metric", "10"])

    def _resilient_members(self, members: frozenset[str], create: bool = False) -> None:
        for fam in (4, 6):
            ids = "/".join(str(NH_BASE[fam] + int(s[1:])) for s in sorted(members))
            verb = "add" if create else "replace"
            argv = ["ip", "nexthop", verb, "id", str(NH_GROUP[fam]), "group", ids]
            self._on("lb", [*argv, "type", "resilient", "buckets", "128"])

    def _agent_argv(self, mode: str) -> list[str]:
        # the default reconcile interval: route changes wake the agent at once anyway
        vips = ["--vip", f"{VIP4}/32", "--vip", f"{VIP6}/128"]
        opts = () if mode in CONNTRACK_MODES else self.agent_opts
        return _dfagent("linux", _base(mode), *vips, *opts, "--state-dir", self._state_dir())

    def _launch_argv(self, mode: str) -> list[str]:
        """The agent's command line, with map mode's mirror sessions."""
        argv = self._agent_argv(mode)
        if _base(mode) == "map":
            # one ERSPAN session per ECMP member interface; the session names the member's
            # interface, and the flow's family picks that member's v4 or v6 next hop
            for name, (_, _, dev, _) in SERVERS.items():
                argv += ["--nexthop-map", f"{name[1:]}=%{dev}"]
            argv += ["--mirror-source", mirror_node.SOURCE]
        return argv

    def _start_agent(self, mode: str) -> None:
        assert self.state is not None
        self.agent = self._spawn(f"agent-{mode}", self._launch_argv(mode))
        if _base(mode) == "map":
            members = {dev: int(name[1:]) for name, (_, _, dev, _) in SERVERS.items()}
            log = Path(self.state.run_dir) / "mirror-shim.log"
            self.shim = mirror_node.spawn(self.state, "lb", members, log)
        self._wait_agent(INITIAL)

    def _spawn(
        self, name: str, argv: list[str], env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """A long-running process on lb, its output in the lab's run directory."""
        assert self.state is not None
        with open(Path(self.state.run_dir) / f"{name}.log", "ab") as log:
            return subprocess.Popen(
                runner.exec_argv(self.state, "lb", argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )

    def _wait_agent(self, servers: frozenset[str], timeout: float = 60) -> None:
        """Until the agent has a mark for every next hop of the current ECMP set (a start
        took over 20 s once on the loaded shared machine: the deadline only delays a failure)."""
        if self.agent is None:
            return
        want = {(4, SERVERS[s][0]) for s in servers} | {(6, SERVERS[s][2]) for s in servers}
        state_dir = self._state_dir()
        agent = self.agent
        status = _dfagent("linux", "status", "--json", "--no-count", "--state-dir", state_dir)

        def marked() -> set[tuple[int, str]]:
            if agent.poll() is not None:  # no point waiting
                raise LabError(f"the agent exited ({agent.returncode}): see {state_dir}/..")
            return _marked_addresses(self._on("lb", status, check=False))

        wait_until(marked, timeout, 0.2, f"the agent's marks for {sorted(want)}", until=want.__le__)

    def _measure_rates(self, holder: Holder, rounds: int = 7, seconds: float = 1.0) -> None:
        """New connections/s through lb: with no pinning (and so no conntrack on lb), with
        conntrack alone (a one-rule nft table: what most routers already pay), and with
        kernel-mode pinning. Interleaved round by round so drift on a shared machine hits all
        alike; the agent is stopped and its state removed (`linux cleanup`) between rounds."""
        rates: dict[str, list[float]] = {"without": [], "conntrack": [], "kernel": []}

        def rate() -> float:
            return float(holder.ask("rate", addrs=[VIP4], port=PORT, seconds=seconds)["rate"])

        for _ in range(rounds):
            rates["without"].append(rate())
            self._on("lb", ["nft", "-f", "-"], stdin=CONNTRACK_ONLY)
            rates["conntrack"].append(rate())
            self._on("lb", ["nft", "delete", "table", "inet", "dfagent_bench_ct"])
            self._start_agent("kernel")
            time.sleep(AGENT_SETTLE)  # its start-up (imports, first conntrack count) is done
            rates["kernel"].append(rate())
            self._stop_agent()
            self._on("lb", _dfagent("linux", "cleanup", "--state-dir", self._state_dir()))
        self.rates = {k: statistics.median(v) for k, v in rates.items()}
        for base in ("without", "conntrack"):
            ratios = [k / b for k, b in zip(rates["kernel"], rates[base], strict=True)]
            self.rates[f"ratio_{base}"] = statistics.median(ratios)
        self.log(
            "kernel: new connections/s "
            + json.dumps({k: [round(x) for x in v] for k, v in rates.items()})
        )

    def _state_dir(self) -> str:
        assert self.state is not None
        return str(Path(self.state.run_dir) / "agent")

    def _stop_agent(self) -> None:
        if self.agent is not None and self.agent.poll() is None:
            self.agent.send_signal(signal.SIGTERM)
            try:
                self.agent.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.agent.kill()
        self.agent = None

    def run_mode(self, mode: str) -> ModeResult:
        res = ModeResult(mode)
        self.lab_name = EOS_LAB if mode in EOS_MODES else self.base_lab
        self._lab_up()
        assert self.state is not None
        holder = Holder(self.state)
        try:
            if mode == "resilient":
                self._resilient_setup()
            elif mode == "kernel" and self.measure_rates:
                self._measure_rates(holder)
            if _base(mode) in ("kernel", "map"):
                self._start_agent(mode)
            elif mode in EOS_MODES:
                self.eos = EosLab(self.state, SERVERS, (VIP4, VIP6), self.eos_agents)
                self.eos.start()
            opened = holder.ask("open", addrs=[VIP4, VIP6], port=PORT, count=self.n)
            res.opened, res.open_failed = opened["opened"], opened["failed"]
            if self.eos is not None:
                self.eos.wait_pins(res.opened)
            base = holder.ask("check")
            self.log(f"{mode}: {res.opened} connections open {base['by_server']}")
            prev = base
            for event, members in EVENTS:
                ev, prev = self._event(holder, prev, event, mode, members)
                res.events.append(ev)
                groups = "  ".join(
                    f"{g} {ev['groups'][g]['alive']}/{ev['groups'][g]['broken']}" for g in GROUPS
                )
                self.log(
                    f"{mode}: {event:14} broken {ev['broken']:5} {ev['broken_how']} "
                    f"(alive/broken: {groups}; "
                    f"{ev['rounds']} rounds in {ev['seconds']} s)  during {ev['during']}  "
                    f"after {ev['fresh']}"
                )
            made = sum(g["opened"] for g in res.groups().values())
            if mode == "map" or (mode == "kernel" and "--one-direction" in self.agent_opts):
                res.pins = self._settled_pins(mode, made)
                self.log(f"{mode}: {res.pins} flows in the pin maps ({made} connections made)")
            elif self.eos is not None:
                res.pins = self.eos.pins(made)
                res.pinned_by_agent = self.eos.pinned_by_agent()
                self.log(f"{mode}: {res.pins} DirectFlow flows steering lb ({made} connections "
                         f"made), pinned by agent {res.pinned_by_agent}")  # fmt: skip
        finally:
            holder.close()
            self._lab_down()
        return res

    def _event(
        self,
        holder: Holder,
        before: dict[str, Any],
        event: str,
        mode: str,
        members: frozenset[str],
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """One event under live traffic on every held connection, new ones opened while it is
        applied (``during``) and, once it settled, a batch opened and kept (``after``).
        ``before``: the holder's cumulative counts after the previous event; returns this
        event's figures and the counts after it."""
        holder.send("traffic", interval=0.1)
        try:
            time.sleep(BEFORE)
            holder.send("grow", rate=self.during_rate, group="during")
            self._apply(event, mode, members)
            if mode != "resilient":
                self._wait_servers(members)
            self._wait_agent(members)
            holder.send("grow_stop")
            if self.eos is not None:
                self.eos.agents_alive()
            time.sleep(SETTLE)  # let the drain/withdraw settle on every path
        finally:
            holder.send("stop")
            tr = holder.reply("traffic")
        fresh = holder.ask("fresh", count=self.fresh, keep=True, group="after")
        was = before["broken_by_group"]
        now = tr["broken_by_group"]
        grown = tr.get("grown", {"by_server": {}, "failed": 0})
        return {
            "event": event,
            "alive": tr["alive"],  # held at the end of the traffic (this "after" batch not yet)
            "broken": tr["broken_now"],
            "groups": {
                g: {"alive": tr["by_group"].get(g, 0), "broken": now.get(g, 0) - was.get(g, 0)}
                for g in GROUPS
            },
            "broken_from": {
                k: v - before["broken_from_total"].get(k, 0)
                for k, v in tr["broken_from_total"].items()
                if v - before["broken_from_total"].get(k, 0)
            },
            "broken_how": {  # reset, no answer in time, or another server answered
                k: v - before["broken_how"].get(k, 0)
                for k, v in tr["broken_how"].items()
                if v - before["broken_how"].get(k, 0)
            },
            "rounds": tr["rounds"],
            "seconds": tr["seconds"],
            "during": grown["by_server"],
            "during_failed": grown["failed"],
            "during_failed_how": grown.get("failed_how", {}),
            "fresh": fresh["answers"],
            "fresh_errors": fresh["errors"],
        }, tr

    def _settled_pins(self, mode: str, want: int, quiet: float = 3.0) -> int:
        """The pin count once the agent has caught up: ``want`` pins, or no change for
        ``quiet`` seconds. The last event's fresh SYNs are still in the agent's micro-batches
        when the bench gets there, and a loaded machine delays them by seconds (CI counted
        231 of 240 at once, all there later)."""
        last, since = -1, time.monotonic()

        def settled() -> bool:
            nonlocal last, since
            n = self._count_pins(mode)
            if n != last:
                last, since = n, time.monotonic()
            return n >= want or time.monotonic() - since >= quiet

        wait_until(settled, 30, 0.2, f"{want} pins, or no new pin for {quiet:g} s")
        return last

    def _count_pins(self, mode: str) -> int:
        total = 0
        flows = "--one-direction" in self._agent_argv(mode)
        names = ("flow4", "flow6") if flows else ("pin4", "pin6")
        for name in names:
            out = self._on("lb", ["nft", "-j", "list", "map", "inet", "dfagent", name])
            for obj in json.loads(out)["nftables"]:
                total += len(obj.get("map", {}).get("elem", []))
        return total

    def per_mode(
        self, modes: list[str], known: Sequence[str], one: Callable[[str], Any]
    ) -> dict[str, Any]:
        """``one(mode)`` for each mode (each on a fresh lab), every name checked first."""
        unknown = [m for m in modes if m not in known]
        if unknown:
            raise LabError(f"unknown mode(s) {', '.join(unknown)}; known: {', '.join(known)}")
        return {m: one(m) for m in modes}

    def run(self, modes: list[str]) -> dict[str, Any]:
        if self.topology != "symmetric" and set(modes) & set(EOS_MODES):
            raise LabError("mode eos runs on the symmetric topology only")
        results = {}
        for mode in modes:
            results[mode] = self.run_mode(mode).as_dict()
        out: dict[str, Any] = {
            "connections": self.n,
            "topology": self.topology,
            "lab": self.base_lab,
            "modes": results,
        }
        if set(modes) & set(EOS_MODES):
            out["eos_lab"] = EOS_LAB
        if self.rates:
            out["new_connection_rate"] = {
                "without_pinning": round(self.rates["without"], 1),
                "conntrack_only": round(self.rates["conntrack"], 1),
                "kernel_mode": round(self.rates["kernel"], 1),
                # medians of per-round ratios (rounds are interleaved)
                "ratio": round(self.rates["ratio_without"], 3),
                "ratio_vs_conntrack": round(self.rates["ratio_conntrack"], 3),
            }
        return out


def _base(mode: str) -> str:
    return mode.removesuffix("-ct")


def _dfagent(*args: str) -> list[str]:
    return [sys.executable, "-m", "dfagent.cli.main", *args]


def _marked_addresses(status_json: str) -> set[tuple[int, str]]:
    """Next hops with a mark and a rule in `dfagent linux status --json` output: v4 by
    gateway, v6 by interface (v6 next hops are link-local, never asserted on)."""
    try:
        data = json.loads(status_json)
    except json.JSONDecodeError:
        return set()
    found: set[tuple[int, str]] = set()
    for nh in data.get("nexthops", []):
        if nh.get("mark") is not None and nh.get("rule"):
            fam = int(nh["family"])
            found.add((fam, str(nh["gateway"] if fam == 4 else nh["ifname"])))
    return found


def root_required() -> None:
    if os.geteuid() != 0:
        raise LabError("the pcc benchmark builds a lab: run it as root")
