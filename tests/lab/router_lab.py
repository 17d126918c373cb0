"""The linux-router lab (labs/linux-router, or labs/linux-router-dsr) driven by the Linux
datapath tests: kernel mode, map mode, one direction, reliability.

The runner brings it up (client → router → s1..s3, the VIP on each server's lo, the runner's
TCP service on port 8080); the tests then play BGP on the router (`set_members` replaces
the ECMP set: plain multipath routes, nexthop-object groups, or IPv4 via IPv6 link-local
next hops), run the agent there, and follow each held connection (dfagent.lab.conns on the
client, and on the router for connections it originates itself).

The tests' short node names: ``c`` is the client, ``r`` the router.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from functools import partial
from pathlib import Path
from typing import Any

from dfagent.bench.pcc import Holder
from dfagent.lab import runner, spec
from dfagent.lab.retry import wait_until
from dfagent.lab.state import LabState

DFAGENT = str(Path(sys.executable).with_name("dfagent"))
VIP4, VIP6 = "1.1.1.1", "2001:db8::1"
PORT = 8080
SERVERS = ("s1", "s2", "s3")
NODES = {"c": "client", "r": "router"}
# the router's interface toward each server (eth1 faces the client); each server's is eth1
TO_SERVER = {s: f"eth{i + 1}" for i, s in enumerate(SERVERS, 1)}
SERVER_IFACE = "eth1"


def sh(cmd: str, check: bool = True) -> str:
    p = subprocess.run(cmd, shell=True, capture_output=True, text=True, check=False)
    if check and p.returncode != 0:
        raise RuntimeError(f"{cmd!r} failed: {p.stderr.strip()}")
    return p.stdout


class Lab:
    def __init__(
        self,
        nexthop_objects: bool = False,
        fast_nud: bool = False,
        unnumbered: bool = False,
        dsr: bool = False,
    ) -> None:
        self.nexthop_objects = nexthop_objects
        self.unnumbered = unnumbered  # v4 VIP routed via the servers' v6 link-local addresses
        self.link_local: dict[str, str] = {}
        self.fast_nud = fast_nud
        # direct server return (linux-router-dsr): each server also joins the client's
        # segment and answers from there, so ``r`` sees only client → server packets
        self.dsr = dsr
        self.spec = spec.load("linux-router-dsr" if dsr else "linux-router")
        self.state: LabState | None = None
        self.ns: dict[str, str] = {}
        self.tmp = Path()
        self.procs: list[subprocess.Popen[Any]] = []
        self.clients: dict[str, Holder] = {}
        self.agent: subprocess.Popen[str] | None = None

    def x(self, node: str, cmd: str, check: bool = True) -> str:
        return sh(f"ip netns exec {self.ns[node]} {cmd}", check)

    def build(self) -> None:
        runner.down(self.spec.name)  # left up by a run that was killed outright
        self.state = runner.up(self.spec, log=False)
        self.ns = {
            short: self.state.namespaces[NODES.get(short, short)] for short in ("c", "r", *SERVERS)
        }
        # agent state, logs and test files live in the run folder: `down` removes them
        self.tmp = Path(self.state.run_dir) / "test"
        self.tmp.mkdir()
        if self.fast_nud:  # the router's entries for s{i} go stale and fail within seconds
            for dev in TO_SERVER.values():
                for fam in ("ipv4", "ipv6"):
                    for k, v in (
                        ("base_reachable_time_ms", 1000),
                        ("delay_first_probe_time", 1),
                        ("ucast_solicit", 2),
                        ("mcast_solicit", 2),
                        ("retrans_time_ms", 200),
                    ):
                        self.x("r", f"sysctl -qw net.{fam}.neigh.{dev}.{k}={v}")
        if self.nexthop_objects:  # the lab's plain multipath routes give way to nhid ones
            self.x("r", f"ip route del {VIP4}/32")
            self.x("r", f"ip -6 route del {VIP6}/128")
        self.set_members(SERVERS)
        for i in range(1, len(SERVERS) + 1):  # resolve neighbours before the first SYN
            self.x("r", f"ping -c1 -W2 10.0.{i}.2")
            self.x("r", f"ping -6 -c1 -W2 fd00:{i}::2")
        for s in SERVERS:  # the runner started the services; wait until they listen
            wait_until(
                partial(self.x, s, f"ss -Htln sport = :{PORT}"),
                what=f"{s}'s service listening on {PORT}",
                until=str.strip,
            )
        for node in ("c", "r"):  # "r": connections the router itself originates (egress)
            self.clients[node] = Holder(self.state, NODES[node])

    def set_members(self, members: tuple[str, ...]) -> None:
        """The router's ECMP set for both VIPs (what BGP would install)."""
        idx = {s: i for i, s in enumerate(SERVERS, 1)}
        dev = TO_SERVER
        if self.unnumbered:  # RFC 5549: IPv4 over IPv6 link-local next hops, as BGP unnumbered
            if not self.link_local:
                for s in SERVERS:
                    self.link_local[s] = str(
                        wait_until(partial(self._link_local, s), what=f"{s}'s link-local address")
                    )
            v4 = " ".join(f"nexthop via inet6 {self.link_local[s]} dev {dev[s]}" for s in members)
            v6 = " ".join(f"nexthop via {self.link_local[s]} dev {dev[s]}" for s in members)
            self.x("r", f"ip route replace {VIP4}/32 {v4}")
            self.x("r", f"ip -6 route replace {VIP6}/128 {v6}")
            return
        if self.nexthop_objects:  # FRR-style: one nexthop object per server, groups per family
            for s, i in idx.items():
                if s not in members:  # (a device without carrier refuses new objects)
                    continue
                self.x("r", f"ip nexthop replace id {10 + i} via 10.0.{i}.2 dev {dev[s]}")
                self.x("r", f"ip nexthop replace id {20 + i} via fd00:{i}::2 dev {dev[s]}")
            self.x(
                "r", f"ip nexthop replace id 10 group {'/'.join(str(10 + idx[s]) for s in members)}"
            )
            self.x(
                "r", f"ip nexthop replace id 20 group {'/'.join(str(20 + idx[s]) for s in members)}"
            )
            self.x("r", f"ip route replace {VIP4}/32 nhid 10")
            self.x("r", f"ip -6 route replace {VIP6}/128 nhid 20")
            return
        v4 = " ".join(f"nexthop via 10.0.{idx[s]}.2 dev {dev[s]}" for s in members)
        v6 = " ".join(f"nexthop via fd00:{idx[s]}::2 dev {dev[s]}" for s in members)
        self.x("r", f"ip route replace {VIP4}/32 {v4}")
        self.x("r", f"ip -6 route replace {VIP6}/128 {v6}")

    def _link_local(self, server: str) -> str | None:
        """The server's link-local address toward the router once DAD has finished."""
        out = self.x(server, f"ip -6 -j addr show dev {SERVER_IFACE} scope link")
        for a in json.loads(out):
            for info in a.get("addr_info", []):
                if info.get("local") and not info.get("tentative"):
                    return str(info["local"])
        return None

    def open_flows(
        self, n4: int, n6: int, keep: bool = True, node: str = "c"
    ) -> tuple[list[str], list[list[Any]]]:
        """Open n4 v4 then n6 v6 connections to the VIPs: the server that answered each, in
        order, and each one's local address and port. Kept open (and followed by `check`)
        unless ``keep`` is false; a connection that could not be opened reads "failed"."""
        holder = self.clients[node] if keep else Holder(self._state(), NODES.get(node, node))
        try:
            held = len(holder.ask("each", timeout=3)["answers"]) if keep else 0
            failed = 0
            for vip, n in ((VIP4, n4), (VIP6, n6)):
                if n:
                    failed += holder.ask("open", addrs=[vip], port=PORT, count=n)["failed"]
            if keep:  # the held connections are followed by position: a gap would shift them
                assert failed == 0, f"{failed} of {n4 + n6} connections could not be opened"
            each = holder.ask("each", timeout=3)
            return each["answers"][held:] + ["failed"] * failed, each["flows"][held:]
        finally:
            if not keep:
                holder.close()

    def open(self, n4: int, n6: int, keep: bool = True, node: str = "c") -> list[str]:
        return self.open_flows(n4, n6, keep, node)[0]

    def check(self, timeout: float = 3.0, node: str = "c") -> list[str]:
        """One request on each held connection: the server that answered, "reset" or
        "timeout", in the order they were opened."""
        return list(self.clients[node].ask("each", timeout=timeout)["answers"])

    def close(self, node: str = "c") -> None:
        """Close the held connections normally (FIN)."""
        self.clients[node].ask("close")

    def _state(self) -> LabState:
        assert self.state is not None, "build() first"
        return self.state

    def start_agent(self, *args: str, extra: tuple[str, ...] = ()) -> None:
        log = open(self.tmp / "agent.log", "a")  # noqa: SIM115 - closed with the process
        self.agent = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                self.ns["r"],
                DFAGENT,
                "linux",
                *args,
                "--state-dir",
                str(self.tmp / "state"),
                "--reconcile-interval",
                "1",
                "--gc-grace",
                "1",
                *extra,
            ],
            stdout=log,
            stderr=log,
            text=True,
        )

    def stop_agent(self) -> None:
        if self.agent is not None:
            self.agent.terminate()
            self.agent.wait(10)
            self.agent = None

    def dfagent(self, *args: str, check: bool = True) -> str:
        cmd = f"{DFAGENT} linux {' '.join(args)} --state-dir {self.tmp / 'state'}"
        return self.x("r", cmd, check)

    def status(self) -> dict[str, Any]:
        """`linux status --json` (exit 3 = something missing: the JSON says what)."""
        return dict(json.loads(self.dfagent("status", "--json", check=False)))

    def snapshot(self) -> dict[str, list[str]]:
        """Ruleset, rules and routes (link-local lines left out: they come and go)."""
        cmds = {
            "nft": "nft list ruleset",
            "rule4": "ip -4 rule",
            "rule6": "ip -6 rule",
            "route4": "ip -4 route show table all",
            "route6": "ip -6 route show table all",
        }
        return {
            k: sorted(ln for ln in self.x("r", c).splitlines() if "fe80" not in ln)
            for k, c in cmds.items()
        }

    def teardown(self) -> None:
        with contextlib.suppress(Exception):
            self.stop_agent()
        for holder in self.clients.values():
            with contextlib.suppress(Exception):
                holder.close()
        for p in self.procs:
            with contextlib.suppress(Exception):
                p.kill()
                p.wait(5)
        runner.down(self.spec.name)  # namespaces, services and the run folder


def broken(before: list[str], after: list[str]) -> int:
    return sum(1 for a, b in zip(before, after, strict=True) if a != b)


def states(lab: Lab) -> list[tuple[str, str]]:
    return sorted((n["nexthop"], n["state"]) for n in lab.status()["nexthops"])


def wait_agent(
    lab: Lab, nexthops: int = 6, what: str = "agent rules and nft map", timeout: float = 30
) -> None:
    """Until the agent has a rule and a map element for `nexthops` next hops. (A status call
    takes seconds when the shared machine is busy, hence the long deadline.)"""

    def progress() -> dict[str, Any]:
        try:
            st = lab.status()
        except RuntimeError as exc:
            return {"status failed": str(exc)}
        return {"rules": st["rules"], "in_map": in_map(st), "nexthops": len(st["nexthops"])}

    def ready(p: dict[str, Any]) -> bool:
        return p.get("rules", 0) >= nexthops and p.get("in_map", 0) >= nexthops

    wait_until(progress, timeout, 0.2, what, until=ready)


def agent_ready(lab: Lab, nexthops: int = 6) -> bool:
    try:
        st = lab.status()
    except RuntimeError:
        return False
    return st["rules"] >= nexthops and in_map(st) >= nexthops


def in_map(status: dict[str, Any]) -> int:
    """Next hops with an element in the kernel's nft next-hop maps (new flows record them)."""
    return sum(1 for n in status["nexthops"] if n["in_map"])
