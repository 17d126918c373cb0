"""The lab's mirror shim on the real kernel: its BPF filter queues only outgoing TCP SYNs
(both families), and `spawn` returns only once the shim can see them, so the first SYN a
bench sends after it is mirrored (a SYN lost here is a connection the bench finds unpinned)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dfagent.lab import mirror_node, netns, runner
from dfagent.lab.state import LabState, load_state

pytestmark = pytest.mark.lab
NS = "dfl-shim-test"

# Runs inside the namespace: a GRE collector on 127.0.0.1, the shim on lo, then SYNs to
# closed ports (v4 and v6) and a connection that carries data; prints what was mirrored.
SCRIPT = r"""
import json, socket, sys, time
from pathlib import Path
from dfagent.lab import mirror_shim
from dfagent.wire.syn import decode_mirror

gre = socket.socket(socket.AF_INET, socket.SOCK_RAW, 47)
tap = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)  # the filter alone, no shim code
mirror_shim.attach_syn_filter(tap)
tap.bind(("lo", mirror_shim.ETH_P_ALL))
proc = mirror_shim.spawn(lambda argv: argv, {"lo": 7}, Path(sys.argv[1]))
try:
    for fam, addr in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        c = socket.socket(fam)
        try:
            c.connect((addr, 9))
        except ConnectionRefusedError:
            pass
        c.close()
    srv = socket.create_server(("127.0.0.1", 0))
    cli = socket.create_connection(srv.getsockname())
    peer, _ = srv.accept()
    for _ in range(50):
        cli.sendall(b"x" * 1000)
        peer.recv(65535)
    gre.settimeout(1.0)
    seen = []
    try:
        while True:
            ev = decode_mirror(gre.recv(65535))
            seen.append([ev.session, ev.dst, ev.dport])
    except TimeoutError:
        pass
    queued = []
    tap.setblocking(False)
    try:
        while True:
            frame, addr = tap.recvfrom(65535)
            queued.append([addr[2], mirror_shim.is_syn(frame)])
    except BlockingIOError:
        pass
    print(json.dumps({"seen": seen, "queued": queued, "port": srv.getsockname()[1]}))
finally:
    proc.terminate()
    proc.wait(10)
"""


@pytest.fixture
def ns() -> Iterator[str]:
    netns.delete_netns(NS)
    netns.add_netns(NS)
    try:
        netns.run(netns.ns_argv(NS, ["ip", "link", "set", "lo", "up"]))
        yield NS
    finally:
        netns.delete_netns(NS)


def test_shim_mirrors_each_outgoing_syn_once_and_nothing_else(ns: str, tmp_path: Path) -> None:
    log = tmp_path / "shim.log"
    argv = netns.ns_argv(ns, [sys.executable, "-c", SCRIPT, str(log)])
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr + log.read_text()
    got = json.loads(out.stdout)
    # one SYN per connection attempt, each once (lo shows it OUTGOING and again as HOST),
    # with the member's session id; no RST, SYN-ACK, ACK or data frame was mirrored
    assert sorted(got["seen"]) == sorted(
        [[7, "127.0.0.1", 9], [7, "::1", 9], [7, "127.0.0.1", got["port"]]]
    )
    # the kernel queued exactly those three frames, each an outgoing SYN
    assert got["queued"] == [[4, True]] * 3
    assert "mirror shim: {'lo': 7} -> 127.0.0.1" in log.read_text()


# The second chance's mirror and the loss: 20 connections to a local server with --synack and
# half the SYN copies dropped; prints the SYNs and SYN-ACKs that reached the collector.
SYNACK_SCRIPT = r"""
import json, socket, sys
from pathlib import Path
from dfagent.lab import mirror_shim
from dfagent.wire import SynAckEvent, decode_mirror, decode_synack

gre = socket.socket(socket.AF_INET, socket.SOCK_RAW, 47)
log = Path(sys.argv[1])
proc = mirror_shim.spawn(lambda argv: argv, {"lo": 5}, log, synack=True, loss=0.5, seed=7)
srv = socket.create_server(("127.0.0.1", 0))
ports = []
for _ in range(20):
    c = socket.create_connection(srv.getsockname())
    srv.accept()[0].close()
    ports.append(c.getsockname()[1])
    c.close()
gre.settimeout(1.0)
syns, synacks = [], []
try:
    while True:
        buf = gre.recv(65535)
        ev = decode_mirror(buf)
        if ev.__class__ is not SynAckEvent and hasattr(ev, "sport"):
            syns.append(ev.sport)
            continue
        ev = decode_synack(buf)
        synacks.append([ev.session, *ev.flow()[2:]])
except TimeoutError:
    pass
proc.terminate()
proc.wait(10)
print(json.dumps({"syns": syns, "synacks": synacks, "ports": ports,
                  "stats": mirror_shim.read_stats(log), "port": srv.getsockname()[1]}))
"""


def test_shim_mirrors_incoming_synacks_and_drops_a_counted_share(ns: str, tmp_path: Path) -> None:
    log = tmp_path / "shim.log"
    argv = netns.ns_argv(ns, [sys.executable, "-c", SYNACK_SCRIPT, str(log)])
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr + log.read_text()
    got = json.loads(out.stdout)
    # every server answer mirrored once (as it arrived: packet type HOST), as the client's flow
    assert sorted(got["synacks"]) == sorted([5, p, got["port"]] for p in got["ports"])
    # about half the SYNs lost, counted; the rest reached the collector
    stats = got["stats"]
    assert stats["syn"] + stats["syn_dropped"] == 20 and 3 <= stats["syn_dropped"] <= 17
    assert len(got["syns"]) == stats["syn"] and set(got["syns"]) <= set(got["ports"])
    assert stats["synack"] == 20 and stats["synack_dropped"] == 0


def test_shim_rejects_a_loss_out_of_range(ns: str) -> None:
    argv = [sys.executable, "-m", "dfagent.lab.mirror_shim", "--collector", "127.0.0.1",
            "--member", "lo=1", "--loss", "1.5"]  # fmt: skip
    out = subprocess.run(netns.ns_argv(ns, argv), capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "'1.5' is not a share between 0 and 1" in out.stderr
    assert "Traceback" not in out.stderr


# Runs in the router's namespace: a GRE collector on the router's end of the mirror node's
# veth, a SYN leaving the router's lo; prints the mirrored SYNs and their outer source.
NODE_SCRIPT = r"""
import json, socket
from dfagent.wire.syn import decode_mirror

gre = socket.socket(socket.AF_INET, socket.SOCK_RAW, 47)
gre.settimeout(1.0)
c = socket.socket()
try:
    c.connect(("127.0.0.1", 9))
except ConnectionRefusedError:
    pass
seen = []
try:
    while True:
        buf, (src, _) = gre.recvfrom(65535)
        ev = decode_mirror(buf)
        seen.append([src, ev.session, ev.dport])
except TimeoutError:
    pass
print(json.dumps(seen))
"""


def test_mirror_node_sends_over_a_veth_and_lab_down_removes_it(tmp_path: Path) -> None:
    """The shim on its own node (map mode's benches): it watches the router's ports, its
    copies cross the veth to the router, and the node is a node of the lab run — `lab down`
    removes it with the rest, as after a crash."""
    state = LabState.new("mirror-node-test", "test")
    state.run_dir = str(tmp_path / "run")
    Path(state.run_dir).mkdir()
    router = state.namespaces["router"] = state.netns_for("router")
    state.save()
    try:
        netns.add_netns(router)
        shim = mirror_node.spawn(state, "router", {"lo": 3}, tmp_path / "shim.log")
        try:
            argv = netns.ns_argv(router, [sys.executable, "-c", NODE_SCRIPT])
            out = subprocess.run(argv, capture_output=True, text=True, timeout=60)
            assert out.returncode == 0, out.stderr
            assert json.loads(out.stdout) == [[mirror_node.SOURCE, 3, 9]]
        finally:
            shim.terminate()
            shim.wait(10)
        node = state.namespaces[mirror_node.NODE]
        assert load_state(state.name).namespaces[mirror_node.NODE] == node  # type: ignore[union-attr]
        assert runner.down(state.name)
        assert node not in netns.list_netns() and router not in netns.list_netns()
    finally:
        runner.down(state.name)
        for ns in state.namespaces.values():
            netns.delete_netns(ns)
