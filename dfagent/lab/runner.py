"""Bring labs up and down in network namespaces, and run commands inside them.

Order of `up`: record state → namespaces (DAD off, so IPv6 addresses work at once) → veth
pairs → bridges for `kind: bridge` nodes → each node's `exec` lines → routing daemons (FRR
configs dry-run first, BIRD configs parsed first) → services. A failure anywhere tears down
what was made (except the run folder with the daemon logs, which the error names and `down`
removes) and re-raises; a runner killed outright leaves a state file that `down` uses.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from dfagent.lab import eos_switch, netns
from dfagent.lab.ceos import CeosConfigError
from dfagent.lab.daemons import (
    bird_argv,
    bird_dryrun,
    frr_argv,
    frr_dryrun,
    frr_prepare,
    python_argv,
    start_daemonizing,
    start_service,
)
from dfagent.lab.errors import LabError
from dfagent.lab.spec import Lab
from dfagent.lab.state import NETNS_PREFIX, LabState, Process, all_states, load_state
from dfagent.lab.topology import Node

NS_SYSCTLS = (
    "net.ipv6.conf.all.accept_dad=0",
    "net.ipv6.conf.default.accept_dad=0",
)


def require_root() -> None:
    if os.geteuid() != 0:
        raise LabError("labs need root (network namespaces, veth, routing daemons): use sudo")


@contextmanager
def _term_as_interrupt() -> Iterator[None]:
    """SIGTERM during `up` unwinds like Ctrl-C, so the cleanup path runs."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def up(lab: Lab, log: bool = True) -> LabState:
    require_root()
    _preflight(lab)
    existing = load_state(lab.name)
    if existing is not None:
        if any(ns in netns.list_netns() for ns in existing.namespaces.values()):
            raise LabError(f"lab {lab.name!r} is already up: `dfagent lab down {lab.name}` first")
        down_state(existing)  # stale record of a crashed run: clear it first
    state = LabState.new(lab.name, str(lab.topology.path))
    state.save()
    try:
        with _term_as_interrupt():
            _build(lab, state, log)
    except KeyboardInterrupt:  # the user stopped it: nothing to investigate, remove it all
        down_state(state)
        raise
    except BaseException as exc:
        # Keep the run folder (daemon logs, the configs as run) for the post-mortem; the
        # record stays too, so `dfagent lab down NAME` removes the folder later.
        stop_running(state)
        state.status = "failed"
        state.save()
        raise LabError(
            f"{exc}\n{lab.name}: bring-up failed; namespaces removed, daemon logs and configs "
            f"kept in {state.run_dir} (`dfagent lab down {lab.name}` removes them)"
        ) from exc
    state.status = "up"
    state.save()
    return state


def _say(log: bool, msg: str) -> None:
    if log:
        print(msg, flush=True)


def _preflight(lab: Lab) -> None:
    """Everything that can be known wrong before touching the kernel: all problems at once."""
    problems = []
    for node in lab.topology.nodes.values():
        try:
            if node.frr_conf is not None:
                bad = frr_dryrun(node.frr_conf, node.frr_daemons)
                problems += [f"{node.name}: {node.frr_conf}: {b}" for b in bad]
            if node.bird_conf is not None:
                problems += [f"{node.name}: {b}" for b in bird_dryrun(node.bird_conf)]
            if node.startup_config is not None:
                eos_switch.check(node)
        except (LabError, CeosConfigError) as exc:
            problems.append(f"{node.name}: {exc}")
    if shutil.which("ip") is None:
        problems.append("iproute2 ('ip') is not installed")
    if problems:
        raise LabError("lab config rejected:\n  " + "\n  ".join(problems))


def _build(lab: Lab, state: LabState, log: bool) -> None:
    topo = lab.topology
    run_dir = Path(state.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    for node in topo.nodes.values():
        ns = state.netns_for(node.name)
        state.namespaces[node.name] = ns
        state.save()  # recorded before it exists
        netns.add_netns(ns)
        netns.run(["ip", "netns", "exec", ns, "sysctl", "-qw", *NS_SYSCTLS])
    _say(log, f"{topo.name}: {len(topo.nodes)} namespaces (run {state.run_id})")
    for link in topo.links:
        netns.add_veth(
            state.namespaces[link.a.node], link.a.iface, state.namespaces[link.b.node], link.b.iface
        )
    for node in topo.nodes.values():
        if node.kind == "bridge":
            _make_bridge(state.namespaces[node.name])
    _say(log, f"{topo.name}: {len(topo.links)} links")
    for node in topo.nodes.values():
        ns = state.namespaces[node.name]
        if node.sysctls:
            netns.run(
                ["ip", "netns", "exec", ns, "sysctl", "-qw"]
                + [f"{k}={v}" for k, v in node.sysctls.items()]
            )
        if node.startup_config is not None:
            eos_switch.configure_linux(ns, node)
        for command in node.exec:
            netns.ns_exec(ns, command, env=node.env)
    for node in topo.nodes.values():
        _start_daemons(node, state, run_dir / node.name)
    for node in topo.nodes.values():
        if node.startup_config is not None:
            eos_switch.start(state, node, run_dir / node.name, frr_dir_of(state, node.name))
            _say(log, f"{topo.name}: {node.name}: eAPI test switch up")
    for svc in lab.services:
        node_dir = run_dir / svc.node
        node_dir.mkdir(parents=True, exist_ok=True)
        argv = python_argv(svc.cmd)
        proc = Process(svc.node, svc.name, argv)
        state.processes.append(proc)
        _start_recorded(state, lab, proc)
    _say(log, f"{topo.name}: up ({len(state.processes)} processes)")


def _start_recorded(state: LabState, lab: Lab, proc: Process) -> None:
    node_dir = Path(state.run_dir) / proc.node
    # a service that keeps files (a config, a lock, a socket) keeps them in its node's run
    # folder: removed by `down`, never shared with another run
    env = {**lab.topology.nodes[proc.node].env, "DFAGENT_LAB_NODE_DIR": str(node_dir)}
    proc.pid = start_service(
        state.namespaces[proc.node], proc.argv, node_dir / f"{proc.name}.log", env
    )
    state.save()


def restart_service(state: LabState, lab: Lab, node: str, name: str) -> None:
    """Start a lab service again (after `stop_daemon`, or after it died) as `up` started it."""
    proc = state.process(node, name)
    if proc is None:
        raise LabError(f"{node} runs no service {name}")
    if proc.pid and netns.alive(proc.pid):
        stop_daemon(state, node, name)
    _start_recorded(state, lab, proc)


def _make_bridge(ns: str) -> None:
    """containerlab's bridge kind is a host bridge; here the node's namespace holds it."""
    ifaces = [i for i in _links_in(ns) if i != "lo"]
    netns.run(["ip", "-n", ns, "link", "add", "br0", "type", "bridge"])
    for iface in ifaces:
        netns.run(["ip", "-n", ns, "link", "set", iface, "master", "br0"])
    netns.run(["ip", "-n", ns, "link", "set", "br0", "up"])


def _links_in(ns: str) -> list[str]:
    return [
        link["ifname"] for link in json.loads(netns.run(["ip", "-n", ns, "-j", "link", "show"]))
    ]


def frr_dir_of(state: LabState, node: str) -> Path:
    return Path(state.run_dir) / node / "frr"


def daemon_argv(state: LabState, node: Node, daemon: str) -> tuple[list[str], Path, Path | None]:
    """argv, pid file and readiness socket of one of a node's daemons."""
    if daemon == "bird":
        d = Path(state.run_dir) / node.name
        return bird_argv(d / "bird.conf", d / "bird.ctl", d / "bird.pid"), d / "bird.pid", None
    fdir = frr_dir_of(state, node.name)
    return frr_argv(daemon, fdir), fdir / f"{daemon}.pid", fdir / f"{daemon}.vty"


def start_daemon(state: LabState, node: Node, daemon: str) -> None:
    argv, pidfile, ready = daemon_argv(state, node, daemon)
    proc = state.process(node.name, daemon)
    if proc is None:
        proc = Process(node.name, daemon, argv)
        state.processes.append(proc)
    state.save()
    proc.pid = start_daemonizing(state.namespaces[node.name], argv, pidfile, ready)
    state.save()


def stop_daemon(state: LabState, node: str, daemon: str, timeout: float = 5.0) -> None:
    proc = state.process(node, daemon)
    if proc is None or not proc.pid:
        raise LabError(f"{node} runs no {daemon}")
    try:
        os.kill(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and netns.alive(proc.pid):
        time.sleep(0.02)
    if netns.alive(proc.pid):
        os.kill(proc.pid, signal.SIGKILL)


def _start_daemons(node: Node, state: LabState, node_dir: Path) -> None:
    if node.frr_conf is not None:
        frr_prepare(node_dir, node.frr_conf)
        for daemon in node.frr_daemons:  # zebra first: the others connect to it
            start_daemon(state, node, daemon)
    if node.bird_conf is not None:
        node_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(node.bird_conf, node_dir / "bird.conf")
        start_daemon(state, node, "bird")


def down_state(state: LabState) -> None:
    """Remove every namespace (and so every process in it) and the run's files."""
    state.status = "stopping"
    state.save()
    stop_running(state)
    shutil.rmtree(state.run_dir, ignore_errors=True)
    state.remove()


def stop_running(state: LabState) -> None:
    """Remove the run's namespaces and processes; keep its files."""
    for ns in state.namespaces.values():
        netns.delete_netns(ns)
    for proc in state.processes:  # started inside a namespace, so already gone; belt and braces
        if proc.pid and netns.alive(proc.pid) and _cmdline_matches(proc):
            os.kill(proc.pid, signal.SIGKILL)


def _cmdline_matches(proc: Process) -> bool:
    """Guard against pid reuse: only kill a pid still running what we started."""
    try:
        with open(f"/proc/{proc.pid}/cmdline", "rb") as f:
            return os.path.basename(proc.argv[0]).encode() in f.read()
    except OSError:
        return False


def down(name: str) -> bool:
    require_root()
    state = load_state(name)
    if state is None:
        return False
    down_state(state)
    return True


def down_all() -> list[str]:
    """Every recorded lab, then any namespace with our prefix that no record names."""
    require_root()
    gone = []
    for state in all_states():
        down_state(state)
        gone.append(state.name)
    for ns in netns.list_netns():
        if ns.startswith(NETNS_PREFIX):
            netns.delete_netns(ns)
            gone.append(ns)
    return gone


@dataclass
class NodeStatus:
    node: str
    netns: str
    present: bool
    processes: dict[str, bool]


def status(state: LabState) -> list[NodeStatus]:
    present = set(netns.list_netns())
    out = []
    for node, ns in state.namespaces.items():
        procs = {
            p.name: bool(p.pid) and netns.alive(p.pid) for p in state.processes if p.node == node
        }
        out.append(NodeStatus(node, ns, ns in present, procs))
    return out


def exec_argv(state: LabState, node: str, cmd: list[str]) -> list[str]:
    """argv to run `cmd` on a node; `vtysh` is pointed at the node's own FRR."""
    if node not in state.namespaces:
        raise LabError(f"lab {state.name} has no node {node!r}: {', '.join(state.namespaces)}")
    if cmd and cmd[0] == "vtysh" and "--vty_socket" not in cmd:
        cmd = ["vtysh", "--vty_socket", str(frr_dir_of(state, node)), *cmd[1:]]
    if cmd and cmd[0] == "birdc" and "-s" not in cmd:
        cmd = ["birdc", "-s", str(Path(state.run_dir) / node / "bird.ctl"), *cmd[1:]]
    return netns.ns_argv(state.namespaces[node], cmd)
