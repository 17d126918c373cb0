"""Kernel-mode pinning on a real kernel: client → router → three servers with an anycast VIP.

Namespaces (all ``dfk-<run>-…``, always removed): ``c`` (client), ``r`` (router with a static
multipath route to the VIP, v4 and v6, L4 hashing), ``s1``..``s3`` (the VIP on ``lo`` and a
tiny TCP service answering its own name on every line). The client holds connections open
and checks each one with a request/response round trip.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.lab

ROOT = Path(__file__).resolve().parents[2]
DFAGENT = str(Path(sys.executable).with_name("dfagent"))
VIP4, VIP6 = "1.1.1.1", "2001:db8::1"
PORT = 8080
SERVERS = ("s1", "s2", "s3")

SERVER_PY = r"""
import asyncio, sys
name = sys.argv[1].encode()
async def serve(r, w):
    try:
        w.write(name + b"\n")
        while await r.readline():
            w.write(name + b"\n")
            await w.drain()
    except Exception:
        pass
    finally:
        w.close()
async def main():
    s4 = await asyncio.start_server(serve, "0.0.0.0", 8080, reuse_address=True)
    s6 = await asyncio.start_server(serve, "::", 8080, reuse_address=True)
    print("ready", flush=True)
    await asyncio.gather(s4.serve_forever(), s6.serve_forever())
asyncio.run(main())
"""

# Holds connections; on "open N6 N4" opens them, on "check" asks each, prints one JSON line.
CLIENT_PY = r"""
import json, select, socket, sys, time
conns = []
def ask(socks, timeout):
    res = [None] * len(socks)
    pend = {}
    for i, s in enumerate(socks):
        if s is None:
            res[i] = "closed"; continue
        try:
            s.sendall(b"?\n"); pend[s.fileno()] = (i, s, b"")
        except OSError as e:
            res[i] = "reset"
    end = time.monotonic() + timeout
    while pend and time.monotonic() < end:
        wait = max(0, end - time.monotonic())
        r, _, _ = select.select([p[1] for p in pend.values()], [], [], wait)
        for s in r:
            i, s, buf = pend[s.fileno()]
            try:
                d = s.recv(100)
            except OSError:
                d = None
            if not d:
                res[i] = "reset"; del pend[s.fileno()]; continue
            buf += d
            if b"\n" in buf:
                res[i] = buf.split(b"\n")[0].decode(); del pend[s.fileno()]
            else:
                pend[s.fileno()] = (i, s, buf)
    for i, s, _ in pend.values():
        res[i] = "timeout"
    return res
for line in sys.stdin:
    cmd = line.split()
    if cmd[0] == "open":
        new = []
        todo = ((socket.AF_INET, sys.argv[1], int(cmd[1])),
                (socket.AF_INET6, sys.argv[2], int(cmd[2])))
        for fam, dst, n in todo:
            for _ in range(n):
                s = socket.socket(fam, socket.SOCK_STREAM)
                s.settimeout(3)
                s.connect((dst, 8080))
                s.settimeout(None)
                s.recv(100)  # greeting
                new.append(s)
        names = ask(new, 3)
        flows = [list(s.getsockname()[:2]) for s in new]
        persist = cmd[3] == "keep" if len(cmd) > 3 else True
        if persist:
            conns.extend(new)
        else:
            for s in new: s.close()
        out = {"names": names, "flows": flows}
    elif cmd[0] == "check":
        out = {"names": ask(conns, float(cmd[1]) if len(cmd) > 1 else 3)}
    elif cmd[0] == "close":
        for s in conns: s.close()
        conns = []
        out = {"names": []}
    print(json.dumps(out), flush=True)
"""


def sh(cmd: str, check: bool = True) -> str:
    p = subprocess.run(cmd, shell=True, capture_output=True, text=True, check=False)
    if check and p.returncode != 0:
        raise RuntimeError(f"{cmd!r} failed: {p.stderr.strip()}")
    return p.stdout


def wait_for(pred: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
    end = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < end:
        last = pred()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what or pred} (last: {last!r})")


def states(lab: Any) -> list[tuple[str, str]]:
    return sorted((n["nexthop"], n["state"]) for n in lab.status()["nexthops"])


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
        # direct server return: the client's segment is a bridge in ``c`` that each server
        # also joins; servers answer from there, so ``r`` sees only client → server packets
        self.dsr = dsr
        run = secrets.token_hex(2)
        self.prefix = f"dfk-{run}"
        self.ns = {n: f"{self.prefix}-{n}" for n in ("c", "r", *SERVERS)}
        self.tmp = Path(tempfile.mkdtemp(prefix="dfk-"))
        self.procs: list[subprocess.Popen[str]] = []
        self.clients: dict[str, subprocess.Popen[str]] = {}
        self.agent: subprocess.Popen[str] | None = None

    def x(self, node: str, cmd: str, check: bool = True) -> str:
        return sh(f"ip netns exec {self.ns[node]} {cmd}", check)

    def build(self) -> None:
        for ns in self.ns.values():
            sh(f"ip netns add {ns}")
            sh(f"ip -n {ns} link set lo up")
        r = self.ns["r"]
        sh(f"ip link add c0 netns {self.ns['c']} type veth peer name r0 netns {r}")
        cdev = "c0"
        if self.dsr:
            cdev = "br0"
            self.x("c", "ip link add br0 type bridge")
            self.x("c", "ip link set c0 master br0")
            self.x("c", "ip link set br0 up")
        self.x("c", f"ip addr add 10.0.0.2/24 dev {cdev}")
        self.x("c", f"ip -6 addr add fd00::2/64 dev {cdev} nodad")
        self.x("c", "ip link set c0 up")
        self.x("c", "ip route add default via 10.0.0.1")
        self.x("c", "ip -6 route add default via fd00::1")
        self.x("r", "ip addr add 10.0.0.1/24 dev r0")
        self.x("r", "ip -6 addr add fd00::1/64 dev r0 nodad")
        self.x("r", "ip link set r0 up")
        for k in (
            "net.ipv4.ip_forward=1",
            "net.ipv6.conf.all.forwarding=1",
            # L4 hash of the 5-tuple only (policy 1 reuses the socket's txhash,
            # which TCP re-rolls on a SYN retransmit; see field notes)
            "net.ipv4.fib_multipath_hash_policy=3",
            "net.ipv4.fib_multipath_hash_fields=0x0037",
            "net.ipv6.fib_multipath_hash_policy=3",
            "net.ipv6.fib_multipath_hash_fields=0x0037",
            "net.ipv4.conf.all.rp_filter=0",
            "net.ipv4.conf.default.rp_filter=0",
        ):
            self.x("r", f"sysctl -qw {k}")
        for i, s in enumerate(SERVERS, 1):
            sh(f"ip link add r{s} netns {r} type veth peer name eth0 netns {self.ns[s]}")
            self.x("r", f"ip addr add 10.0.{i}.1/24 dev r{s}")
            self.x("r", f"ip -6 addr add fd00:{i}::1/64 dev r{s} nodad")
            if self.fast_nud:  # the router's entries for s{i} go stale and fail within seconds
                for fam in ("ipv4", "ipv6"):
                    for k, v in (
                        ("base_reachable_time_ms", 1000),
                        ("delay_first_probe_time", 1),
                        ("ucast_solicit", 2),
                        ("mcast_solicit", 2),
                        ("retrans_time_ms", 200),
                    ):
                        self.x("r", f"sysctl -qw net.{fam}.neigh.r{s}.{k}={v}")
            self.x("r", f"ip link set r{s} up")
            self.x(s, f"ip addr add 10.0.{i}.2/24 dev eth0")
            self.x(s, f"ip -6 addr add fd00:{i}::2/64 dev eth0 nodad")
            self.x(s, "ip link set eth0 up")
            self.x(s, f"ip addr add {VIP4}/32 dev lo")
            self.x(s, f"ip -6 addr add {VIP6}/128 dev lo")
            self.x(s, f"ip route add default via 10.0.{i}.1")
            self.x(s, f"ip -6 route add default via fd00:{i}::1")
            if self.dsr:  # s{i} on the client's segment: its answers bypass r
                c = self.ns["c"]
                sh(f"ip link add d{s} netns {c} type veth peer name dsr netns {self.ns[s]}")
                self.x("c", f"ip link set d{s} master br0")
                self.x("c", f"ip link set d{s} up")
                self.x(s, f"ip addr add 10.0.0.1{i}/24 dev dsr")
                self.x(s, f"ip -6 addr add fd00::1{i}/64 dev dsr nodad")
                self.x(s, "ip link set dsr up")
                for dev in ("all", "default", "eth0", "dsr"):
                    self.x(s, f"sysctl -qw net.ipv4.conf.{dev}.rp_filter=0")
        self.set_members(SERVERS)
        for i in range(1, len(SERVERS) + 1):  # resolve neighbours before the first SYN
            self.x("r", f"ping -c1 -W2 10.0.{i}.2")
            self.x("r", f"ping -6 -c1 -W2 fd00:{i}::2")
        (self.tmp / "server.py").write_text(SERVER_PY)
        (self.tmp / "client.py").write_text(CLIENT_PY)
        for s in SERVERS:
            p = subprocess.Popen(
                ["ip", "netns", "exec", self.ns[s], sys.executable, str(self.tmp / "server.py"), s],
                stdout=subprocess.PIPE,
                text=True,
            )
            self.procs.append(p)
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        for node in ("c", "r"):  # "r": connections the router itself originates (egress)
            self.clients[node] = subprocess.Popen(
                [
                    "ip",
                    "netns",
                    "exec",
                    self.ns[node],
                    sys.executable,
                    str(self.tmp / "client.py"),
                    VIP4,
                    VIP6,
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )

    def set_members(self, members: tuple[str, ...]) -> None:
        """The router's ECMP set for both VIPs (what BGP would install)."""
        idx = {s: i for i, s in enumerate(SERVERS, 1)}
        if self.unnumbered:  # RFC 5549: IPv4 over IPv6 link-local next hops, as BGP unnumbered
            if not self.link_local:
                for s in SERVERS:
                    self.link_local[s] = wait_for(partial(self._link_local, s), what="LL")
            v4 = " ".join(f"nexthop via inet6 {self.link_local[s]} dev r{s}" for s in members)
            v6 = " ".join(f"nexthop via {self.link_local[s]} dev r{s}" for s in members)
            self.x("r", f"ip route replace {VIP4}/32 {v4}")
            self.x("r", f"ip -6 route replace {VIP6}/128 {v6}")
            return
        if self.nexthop_objects:  # FRR-style: one nexthop object per server, groups per family
            for s, i in idx.items():
                if s not in members:  # (a device without carrier refuses new objects)
                    continue
                self.x("r", f"ip nexthop replace id {10 + i} via 10.0.{i}.2 dev r{s}")
                self.x("r", f"ip nexthop replace id {20 + i} via fd00:{i}::2 dev r{s}")
            self.x(
                "r", f"ip nexthop replace id 10 group {'/'.join(str(10 + idx[s]) for s in members)}"
            )
            self.x(
                "r", f"ip nexthop replace id 20 group {'/'.join(str(20 + idx[s]) for s in members)}"
            )
            self.x("r", f"ip route replace {VIP4}/32 nhid 10")
            self.x("r", f"ip -6 route replace {VIP6}/128 nhid 20")
            return
        v4 = " ".join(f"nexthop via 10.0.{idx[s]}.2 dev r{s}" for s in members)
        v6 = " ".join(f"nexthop via fd00:{idx[s]}::2 dev r{s}" for s in members)
        self.x("r", f"ip route replace {VIP4}/32 {v4}")
        self.x("r", f"ip -6 route replace {VIP6}/128 {v6}")

    def _link_local(self, server: str) -> str | None:
        """The server's eth0 link-local address once DAD has finished."""
        for a in json.loads(self.x(server, "ip -6 -j addr show dev eth0 scope link")):
            for info in a.get("addr_info", []):
                if info.get("local") and not info.get("tentative"):
                    return str(info["local"])
        return None

    def client_cmd(self, line: str, node: str = "c") -> dict[str, Any]:
        client = self.clients[node]
        assert client.stdin and client.stdout
        client.stdin.write(line + "\n")
        client.stdin.flush()
        out = client.stdout.readline()
        if not out:
            raise RuntimeError("client died")
        return dict(json.loads(out))

    def open(self, n4: int, n6: int, keep: bool = True, node: str = "c") -> list[str]:
        cmd = f"open {n4} {n6} {'keep' if keep else 'drop'}"
        return list(self.client_cmd(cmd, node)["names"])

    def check(self, timeout: float = 3.0, node: str = "c") -> list[str]:
        return list(self.client_cmd(f"check {timeout}", node)["names"])

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
        procs = [*self.procs, *self.clients.values()]
        for p in procs:
            with contextlib.suppress(Exception):
                p.kill()
                p.wait(5)
        for ns in self.ns.values():
            sh(f"ip netns del {ns}", check=False)
        sh(f"rm -rf {self.tmp}", check=False)


def broken(before: list[str], after: list[str]) -> int:
    return sum(1 for a, b in zip(before, after, strict=True) if a != b)


def agent_ready(lab: Lab, nexthops: int = 6) -> bool:
    try:
        st = lab.status()
    except RuntimeError:
        return False
    return st["rules"] >= nexthops and in_map(st) >= nexthops


def in_map(status: dict[str, Any]) -> int:
    """Next hops with an element in the kernel's nft next-hop maps (new flows record them)."""
    return sum(1 for n in status["nexthops"] if n["in_map"])


def test_without_pinning_connections_break(lab: Lab) -> None:
    """The control: plain ECMP breaks connections when a next hop leaves (so tests can fail)."""
    before = lab.open(30, 20)
    local = lab.open(20, 10, node="r")
    assert set(before) == set(SERVERS), before
    lab.set_members(("s2", "s3"))
    after = lab.check()
    after_local = lab.check(node="r")
    print(f"plain ECMP: {broken(before, after)} of {len(before)} forwarded connections broke")
    print(f"plain ECMP: {broken(local, after_local)} of {len(local)} egress connections broke")
    assert broken(before, after) > 0
    assert broken(local, after_local) > 0


def test_kernel_mode(lab: Lab) -> None:
    base = lab.snapshot()
    lab.start_agent("kernel", "--vip", f"{VIP4}/32", "--vip", f"{VIP6}/128")
    wait_for(lambda: agent_ready(lab), what="agent rules and nft map")
    marks0 = {n["nexthop"]: n["mark"] for n in lab.status()["nexthops"]}

    before = lab.open(30, 20)
    local = lab.open(20, 10, node="r")
    assert set(before) == set(SERVERS), before
    on_s1 = [i for i, n in enumerate(before) if n == "s1"]

    # 1. drain s1: it leaves the ECMP set but still answers → nothing breaks
    lab.set_members(("s2", "s3"))
    after = lab.check()
    after_local = lab.check(node="r")
    print(f"kernel mode, drain: {broken(before, after)} of {len(before)} forwarded broke")
    print(f"kernel mode, drain: {broken(local, after_local)} of {len(local)} egress broke")
    assert broken(before, after) == 0, list(zip(before, after, strict=True))
    assert broken(local, after_local) == 0, list(zip(local, after_local, strict=True))
    fresh = lab.open(20, 10, keep=False)
    assert "s1" not in fresh and set(fresh) <= {"s2", "s3"}
    st = lab.status()
    s1 = [n for n in st["nexthops"] if n["gateway"] in ("10.0.1.2", "fd00:1::2")]
    assert len(s1) == 2 and all(n["state"] == "drained" and n["rule"] for n in s1), s1
    assert sum(n["pinned"] for n in s1) == len(on_s1) + local.count("s1")
    lab.client_cmd("close", node="r")

    # 2. the agent restarts: the kernel keeps pinning meanwhile; the restart adopts state
    lab.stop_agent()
    assert broken(before, lab.check()) == 0
    lab.start_agent(
        "kernel", "--vip", f"{VIP4}/32", "--vip", f"{VIP6}/128", extra=("--dead-hold", "3")
    )
    wait_for(lambda: agent_ready(lab, 4), what="agent back")
    time.sleep(1.5)
    st = lab.status()
    assert {n["nexthop"]: n["mark"] for n in st["nexthops"]} == marks0
    assert broken(before, lab.check()) == 0
    # and again with the state file lost: marks are adopted from the nft maps and tables
    lab.stop_agent()
    (lab.tmp / "state" / "linux-datapath.json").unlink()
    lab.start_agent(
        "kernel", "--vip", f"{VIP4}/32", "--vip", f"{VIP6}/128", extra=("--dead-hold", "3")
    )
    wait_for(lambda: len(lab.status()["nexthops"]) == 6, what="agent back without state")
    st = lab.status()
    assert {n["nexthop"]: n["mark"] for n in st["nexthops"]} == marks0
    assert broken(before, lab.check()) == 0

    # 3. s1 dies (its link goes down): its pins are released at once — those connections
    #    are answered by a reset from the surviving servers instead of black-holing
    lab.x("s1", "ip link set eth0 down")
    wait_for(
        lambda: all(
            n["state"] == "dead" and not n["rule"]
            for n in lab.status()["nexthops"]
            if n["gateway"] in ("10.0.1.2", "fd00:1::2")
        ),
        what="s1 released",
    )
    after = lab.check(timeout=3)
    assert all(after[i] == "reset" for i in on_s1), [after[i] for i in on_s1]
    others = [i for i in range(len(before)) if i not in on_s1]
    assert all(after[i] == before[i] for i in others)
    # released and unpinned: s1's tables go away
    wait_for(
        lambda: (
            not any(n["gateway"] in ("10.0.1.2", "fd00:1::2") for n in lab.status()["nexthops"])
        ),
        what="s1 removed",
    )

    # 4. cleanup leaves the router as it was
    lab.x("s1", "ip link set eth0 up")
    lab.set_members(SERVERS)
    lab.stop_agent()
    lab.dfagent("cleanup")
    wait_for(lambda: "linkdown" not in lab.x("r", "ip route show table all"), what="carrier")
    after_snap = lab.snapshot()
    for key in base:
        assert after_snap[key] == base[key], key


def test_kernel_mode_nexthop_objects() -> None:
    """Routes through nexthop-object groups (what FRR installs); drain = group shrinks."""
    lab = Lab(nexthop_objects=True)
    try:
        lab.build()
        lab.start_agent("kernel", "--vip", f"{VIP4}/32", "--vip", f"{VIP6}/128")
        wait_for(lambda: agent_ready(lab), what="agent rules and nft map")
        before = lab.open(20, 10)
        assert set(before) == set(SERVERS), before
        lab.set_members(("s2", "s3"))
        wait_for(lambda: in_map(lab.status()) == 4, what="s1 out of the nexthop map")
        after = lab.check()
        print(f"kernel mode, nexthop objects: {broken(before, after)} of {len(before)} broke")
        assert broken(before, after) == 0, list(zip(before, after, strict=True))
        assert "s1" not in lab.open(20, 10, keep=False)
    finally:
        lab.teardown()


def test_kernel_mode_neighbour_failed_releases_pins() -> None:
    """s1 goes silent (it drops every frame; its link stays up): the router's neighbour entry
    fails, the pins are released and s1's connections get a reset at once instead of hanging
    until they time out."""
    lab = Lab(fast_nud=True)
    try:
        lab.build()
        lab.start_agent("kernel", "--vip", f"{VIP4}/32", "--vip", f"{VIP6}/128")
        wait_for(lambda: agent_ready(lab), what="agent rules and nft map")
        before = lab.open(20, 10)
        on_s1 = [i for i, n in enumerate(before) if n == "s1"]
        assert on_s1
        lab.set_members(("s2", "s3"))
        assert broken(before, lab.check()) == 0
        silence = (
            "add table netdev dfk\n"
            "add chain netdev dfk in"
            " { type filter hook ingress device eth0 priority 0; policy drop; }\n"
        )
        (lab.tmp / "silence.nft").write_text(silence)
        lab.x("s1", f"nft -f {lab.tmp / 'silence.nft'}")
        after = lab.check(timeout=12)
        print(f"neighbour failed: s1 connections {[after[i] for i in on_s1]}")
        assert all(after[i] == "reset" for i in on_s1), [after[i] for i in on_s1]
        assert all(after[i] == before[i] for i in range(len(before)) if i not in on_s1)
        st = lab.status()
        assert all(
            n["state"] == "dead" and not n["rule"]
            for n in st["nexthops"]
            if n["gateway"] in ("10.0.1.2", "fd00:1::2")
        )
    finally:
        lab.teardown()
