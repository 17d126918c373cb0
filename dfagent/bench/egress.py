"""The broken-connection benchmark on the egress labs: a host with two NATing gateways.

A gateway's NAT state lives on that gateway: a connection that ECMP moves to the other one
is NATed to another address, and the server resets it. For each gateway policy and each
mode (`ecmp`: the host's plain multipath; `kernel`: dfagent kernel mode on the host with the
default route as its VIP, `dfagent linux kernel --vip 0.0.0.0/0`), on a fresh lab: open N
connections from the host to the server, apply the policy's events, and after each ask every
connection once (broken = reset, no answer, or another NAT address answered) and open fresh
connections to see where new flows go.

- equal ECMP (labs/egress-ecmp): drain r1 (the host's local-preference route-map, r1's
  session stays up), undrain r1, kill r2's bgpd (SIGKILL: its TCP session closes with it, so
  the host drops r2's default at once; r2 still forwards and keeps its NAT state).
- active/backup (labs/egress-ecmp-active-backup): r1's bgpd stops (failover to r2), starts
  again (failback to r1).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dfagent.backends.frr.drain import FrrDrain
from dfagent.bench.pcc import Holder
from dfagent.lab import checks, runner, spec
from dfagent.lab.errors import LabError
from dfagent.lab.state import LabState

SERVER, PORT = "203.0.113.10", 8080
GATEWAYS = {"r1": ("10.10.0.1", "100.64.1.1"), "r2": ("10.10.0.2", "100.64.2.1")}
BY_NAT = {nat: gw for gw, (_, nat) in GATEWAYS.items()}
MODES = ("ecmp", "kernel")
Log = Callable[[str], None]


@dataclass(frozen=True)
class Policy:
    name: str
    lab: str
    converge_checks: int  # the lab's first checks that say it converged
    initial: frozenset[str]
    events: tuple[tuple[str, frozenset[str]], ...]  # (event, gateways in the default after)


POLICIES = (
    Policy(
        "equal",
        "egress-ecmp",
        2,
        frozenset({"r1", "r2"}),
        (
            ("drain r1", frozenset({"r2"})),
            ("undrain r1", frozenset({"r1", "r2"})),
            ("kill r2 bgpd", frozenset({"r1"})),
        ),
    ),
    Policy(
        "active-backup",
        "egress-ecmp-active-backup",
        3,
        frozenset({"r1"}),
        (("r1 bgpd stops", frozenset({"r2"})), ("r1 bgpd starts", frozenset({"r1"}))),
    ),
)


class EgressBench:
    def __init__(self, connections: int, fresh: int = 40, log: Log = print):
        self.n = connections
        self.fresh = fresh
        self.log = log

    def run(self, modes: list[str]) -> dict[str, Any]:
        out: dict[str, Any] = {"connections": self.n, "policies": {}}
        for policy in POLICIES:
            out["policies"][policy.name] = {m: self.run_mode(policy, m) for m in modes}
        return out

    def run_mode(self, policy: Policy, mode: str) -> dict[str, Any]:
        lab = spec.load(policy.lab)
        runner.down(lab.name)
        state = runner.up(lab, log=False)
        agent = None
        try:
            converged = spec.Lab(lab.topology, lab.services, lab.checks[: policy.converge_checks])
            failed = [r for r in checks.run_checks(state, converged) if not r.ok]
            if failed:
                raise LabError(f"{lab.name} did not converge: {failed[0].name}: {failed[0].detail}")
            _wait_default(state, policy.initial)
            if mode == "kernel":
                agent = _start_agent(state)
                _wait_rules(state, len(policy.initial))
            holder = Holder(state, node="host")
            try:
                return self._events(state, policy, mode, holder)
            finally:
                holder.close()
        finally:
            if agent is not None and agent.poll() is None:
                agent.send_signal(signal.SIGTERM)
                try:
                    agent.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    agent.kill()
            runner.down(lab.name)

    def _events(self, state: LabState, policy: Policy, mode: str, holder: Holder) -> dict:
        opened = holder.ask("open", addrs=[SERVER], port=PORT, count=self.n)
        base = holder.ask("check")
        tag = f"{policy.name}/{mode}"
        self.log(f"{tag}: {opened['opened']} open, via {_by_gateway(base['by_server'])}")
        result: dict[str, Any] = {
            "opened": opened["opened"],
            "open_failed": opened["failed"],
            "by_gateway": _by_gateway(base["by_server"]),
            "events": [],
        }
        broken_before = base["broken"]
        for event, gateways in policy.events:
            t0 = time.monotonic()
            _apply(state, event)
            _wait_default(state, gateways, timeout=40)
            converge = time.monotonic() - t0
            time.sleep(1.0)  # let every path settle
            chk = holder.ask("check")
            fresh = holder.ask("fresh", count=self.fresh)
            ev = {
                "event": event,
                "converged_s": round(converge, 1),
                "alive": chk["alive"],
                "broken": chk["broken"] - broken_before,
                "broken_from": _by_gateway(chk["broken_from"]),
                "fresh": _by_gateway(fresh["answers"]),
                "fresh_errors": fresh["errors"],
            }
            broken_before = chk["broken"]
            result["events"].append(ev)
            self.log(
                f"{tag}: {event:15} alive {ev['alive']:5} broken {ev['broken']:5} "
                f"fresh {ev['fresh']} (default converged in {ev['converged_s']} s)"
            )
        result["broken_total"] = sum(e["broken"] for e in result["events"])
        return result


def _apply(state: LabState, event: str) -> None:
    r1 = GATEWAYS["r1"][0]
    drain = FrrDrain(runner.exec_argv(state, "host", ["vtysh"]))
    if event == "drain r1":
        drain.drain([r1])
    elif event == "undrain r1":
        drain.undrain([r1])
    elif event == "kill r2 bgpd":
        proc = state.process("r2", "bgpd")
        if proc is None or not proc.pid:
            raise LabError("r2 runs no bgpd")
        os.kill(proc.pid, signal.SIGKILL)
    elif event == "r1 bgpd stops":
        runner.stop_daemon(state, "r1", "bgpd")
    elif event == "r1 bgpd starts":
        runner.start_daemon(state, spec.load(state.topology).topology.nodes["r1"], "bgpd")
    else:
        raise LabError(f"unknown event {event!r}")


def _on_host(state: LabState, argv: list[str]) -> str:
    argv = runner.exec_argv(state, "host", argv)
    return subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout


def _default_gateways(state: LabState) -> frozenset[str]:
    routes = json.loads(_on_host(state, ["ip", "-j", "route", "show", "default"]) or "[]")
    by_addr = {addr: gw for gw, (addr, _) in GATEWAYS.items()}
    return frozenset(
        by_addr.get(nh.get("gateway", ""), "?") for r in routes for nh in r.get("nexthops", [r])
    )


def _wait_default(state: LabState, want: frozenset[str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while (seen := _default_gateways(state)) != want:
        if time.monotonic() > deadline:
            raise LabError(f"host default via {sorted(seen)}, expected {sorted(want)}")
        time.sleep(0.2)


def _start_agent(state: LabState) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "dfagent.cli.main", "linux", "kernel", "--vip", "0.0.0.0/0"]
    argv += ["--state-dir", str(Path(state.run_dir) / "agent")]
    with open(Path(state.run_dir) / "agent.log", "ab") as log:
        return subprocess.Popen(
            runner.exec_argv(state, "host", argv), stdout=log, stderr=subprocess.STDOUT
        )


def _wait_rules(state: LabState, n: int, timeout: float = 20) -> None:
    """Until the agent has a rule (a mark, a table) per gateway of the default."""
    deadline = time.monotonic() + timeout
    while len(_on_host(state, ["ip", "rule", "show", "pref", "9000"]).splitlines()) < n:
        if time.monotonic() > deadline:
            raise LabError(f"the agent made no rule per gateway: see {state.run_dir}/agent.log")
        time.sleep(0.2)


def _by_gateway(by_nat: dict[str, int]) -> dict[str, int]:
    return {BY_NAT.get(k, k): v for k, v in sorted(by_nat.items())}


def format_table(result: dict[str, Any]) -> str:
    lines = [f"{result['connections']} connections from the host per policy and mode"]
    lines.append(
        f"{'policy':14} {'mode':7} {'event':15} {'alive':>6} {'broken':>7}  new flows went to"
    )
    for policy, modes in result["policies"].items():
        for mode, r in modes.items():
            lines.append(f"{policy:14} {mode:7} {'(opened)':15} {r['opened']:6} {'':7}  "
                         + " ".join(f"{k}:{v}" for k, v in r["by_gateway"].items()))  # fmt: skip
            for ev in r["events"]:
                fresh = " ".join(f"{k}:{v}" for k, v in ev["fresh"].items())
                lines.append(
                    f"{policy:14} {mode:7} {ev['event']:15} {ev['alive']:6} {ev['broken']:7}  "
                    f"{fresh}"
                )
            lines.append(f"{policy:14} {mode:7} {'total':15} {'':6} {r['broken_total']:7}")
    return "\n".join(lines)
