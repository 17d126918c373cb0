"""The resilient-ecmp-eos lab on the namespace runner: lb (kind arista_ceos) gets its
startup-config's addresses, FRR and the eAPI test switch, reached with pyeapi as its
startup-config's user; the switch's monitor sessions send real GRE mirrors of the SYNs each
server-facing port carries, to the VIP (so lb's ECMP hands them to a server), ERSPAN session
= the member; sessions changed over eAPI take effect at once; `lab down` stops the switch."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from dfagent.lab import eos_switch, netns, runner
from dfagent.lab.errors import LabError
from dfagent.lab.state import LabState, load_state
from tests.eos.test_eapi_linux_datapath import ask
from tests.lab.lb_agent import converged

pytestmark = pytest.mark.lab
LAB = "resilient-ecmp-eos"
SERVERS = ("s1", "s2", "s3", "s4")

# Runs on a server: every GRE packet to it until SIGTERM, decoded; prints them as JSON.
RECEIVE = r"""
import json, signal, socket, sys
from dfagent.wire.syn import SynEvent, decode_slow
got = []
def stop(*_):
    print(json.dumps(got), flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_GRE)
print("ready", flush=True)
while True:
    buf = s.recv(65535)
    ev = decode_slow(buf)
    if isinstance(ev, SynEvent):
        got.append([ev.session, ev.mirror, ev.src, ev.sport, ev.dst])
"""


@pytest.fixture(scope="module")
def lab() -> Iterator[LabState]:
    with converged(LAB) as state:
        yield state


def mirrored(state: LabState, conns: list[tuple[int, int]]) -> tuple[dict[str, str | None], list]:
    """Open the connections; return who answered each and the mirrors the servers got:
    [receiving server, session, mirror address, client, client port, VIP]."""
    procs = {}
    for s in SERVERS:
        argv = runner.exec_argv(state, s, [sys.executable, "-c", RECEIVE])
        procs[s] = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    try:
        for proc in procs.values():
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        answered = ask(state, conns)
        time.sleep(0.5)  # the last mirrors on their way
    finally:
        for proc in procs.values():
            proc.send_signal(signal.SIGTERM)
    got = []
    for s, proc in procs.items():
        out, _ = proc.communicate(timeout=10)
        got += [[s, *m] for m in json.loads(out)]
    return answered, got


def test_lb_is_the_startup_config_and_its_switch_answers_pyeapi(lab: LabState) -> None:
    conn = eos_switch.connection(lab, "lb")
    assert conn["username"] == "dfagent" and conn["transport"] == "http" and conn["port"] == 80
    assert "10.2.1.1" in conn["addresses"] and "fd00:2:4::1" in conn["addresses"]
    hostname, flows = eos_switch.run_cmds(lab, "lb", ["show hostname", "show directflow flows"])
    assert hostname["hostname"] == "lb" and flows == {"flows": []}
    with pytest.raises(LabError, match="Invalid input"):
        eos_switch.run_cmds(lab, "lb", ["configure", "monitor session x source Ethernet2 out"])
    out = runner.exec_argv(lab, "lb", ["ip", "-j", "addr", "show", "eth3"])
    addrs = json.loads(subprocess.run(out, capture_output=True, text=True, check=True).stdout)
    assert {a["local"] for a in addrs[0]["addr_info"]} >= {"10.2.2.1", "fd00:2:2::1"}


def test_monitor_sessions_send_gre_mirrors_of_each_members_syns(lab: LabState) -> None:
    conns = [(fam, p) for fam in (4, 6) for p in range(33000, 33030)]
    answered, got = mirrored(lab, conns)
    by_flow: dict[tuple[int, int], set[int]] = {}
    receivers = set()
    for receiver, session, mirror, src, sport, _dst in got:
        assert mirror == "10.1.0.1"
        by_flow.setdefault((6 if ":" in src else 4, sport), set()).add(session)
        receivers.add(receiver)
    for fam, p in conns:
        server = answered[f"{fam}:{p}"]
        assert server is not None
        # one mirror per SYN (a retransmitted SYN is mirrored again, by the same session)
        assert by_flow.get((fam, p)) == {int(server[1:])}, (fam, p, server, by_flow.get((fam, p)))
    assert len(receivers) == 1  # GRE has no ports: lb's ECMP sends all mirrors one way
    assert {answered[f"4:{p}"] for p in range(33000, 33030)} == {"s1", "s2", "s3"}


def test_sessions_changed_over_eapi_take_effect_at_once(lab: LabState) -> None:
    cfg = ["configure"] + [f"no monitor session {s}" for s in SERVERS]
    cfg += ["monitor session both2 source Ethernet2 both",
            "monitor session both2 destination tunnel mode gre source 10.1.0.1 destination "
            "1.1.1.1", "end"]  # fmt: skip
    eos_switch.run_cmds(lab, "lb", cfg)
    try:
        conns = [(4, p) for p in range(34000, 34030)]
        answered, got = mirrored(lab, conns)
        via_s1 = {p for p in range(34000, 34030) if answered[f"4:{p}"] == "s1"}
        assert via_s1 and len(via_s1) < len(conns)
        # rx on Ethernet2 adds s1's SYN-ACKs (SYN set): only the SYNs are decoded here
        assert {m[4] for m in got} == via_s1 and {m[1] for m in got} == {2}
    finally:
        restore = ["configure", "no monitor session both2"]
        for n, s in enumerate(SERVERS, start=2):
            restore += [f"monitor session {s} source Ethernet{n} tx",
                        f"monitor session {s} destination tunnel mode gre source 10.1.0.1 "
                        "destination 1.1.1.1"]  # fmt: skip
        eos_switch.run_cmds(lab, "lb", [*restore, "end"])


def test_lab_down_stops_the_switch_from_the_record_alone(lab: LabState) -> None:
    """Last in the module: it takes the lab down."""
    proc = lab.process("lb", eos_switch.PROCESS)
    assert proc is not None and netns.alive(proc.pid)
    # as after a crashed runner: `lab down` has only the record on disk
    record = load_state(LAB)
    assert record is not None and record.process("lb", eos_switch.PROCESS) is not None
    runner.down_state(record)
    deadline = time.monotonic() + 5
    while netns.alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not netns.alive(proc.pid)
    assert lab.namespaces["lb"] not in netns.list_netns()
