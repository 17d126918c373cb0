"""Conntrack as an attack surface (issue 11, item 7), on a real kernel: non-VIP traffic is
not tracked because of dfagent (unless other rules use conntrack), the SYN-flood guard
(`--syn-untracked`) pins connections from their first ACK and leaves spoofed SYNs without
an entry, and the two benches at a small size."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from dfagent.lab.retry import wait_until
from tests.lab.router_lab import DFAGENT, PORT, VIP4, VIP6, Lab, broken, wait_agent

pytestmark = pytest.mark.lab
VIPS = ("--vip", f"{VIP4}/32", "--vip", f"{VIP6}/128")
S1, S1_6 = "10.0.1.2", "fd00:1::2"  # s1's own addresses: routed by r, not VIPs
FIELD = "0x08000000/0x08000000"  # dfagent's top bit: every pinned entry has it


def entries(lab: Lab, needle: str) -> int:
    out = lab.x("r", "conntrack -L -f ipv4") + lab.x("r", "conntrack -L -f ipv6")
    return sum(needle in ln for ln in out.splitlines())


def non_vip_traffic(lab: Lab) -> None:
    """TCP connections (v4, v6) and UDP datagrams from the client to s1's own addresses."""
    code = (
        "import socket\n"
        f"for a in ('{S1}', '{S1_6}'):\n"
        f"    s = socket.create_connection((a, {PORT}), timeout=3); s.sendall(b'who\\n')\n"
        "    assert s.recv(64); s.close()\n"
    )
    lab.x("c", f'{sys.executable} -c "{code}"')
    lab.x("c", f"{sys.executable} -m dfagent.lab.udpblast --dst {S1} --seconds 0.2 --flows 8")


def untrack_rules(lab: Lab) -> int:
    return lab.x("r", "nft list chain inet dfagent untrack").count("saddr != @vip")


@pytest.mark.parametrize("track_others", [False, True], ids=["default", "track-others"])
def test_non_vip_traffic_is_not_tracked(lab: Lab, track_others: bool) -> None:
    """With the agent running, VIP connections have (marked) entries and flows to a server's
    own address have none; `--track-others` (the control) tracks them again."""
    lab.start_agent("kernel", *VIPS, extra=("--track-others",) if track_others else ())
    wait_agent(lab, what="agent", timeout=60)
    before = lab.open(10, 10)
    non_vip_traffic(lab)
    assert entries(lab, f"dst={VIP4} ") + entries(lab, f"dst={VIP6} ") == 20
    got = entries(lab, f"dst={S1} ") + entries(lab, f"dst={S1_6} ")
    print(f"track_others={track_others}: {got} entries for non-VIP flows")
    if track_others:
        assert got >= 3  # two TCP connections, UDP from 8 ports
    else:
        assert got == 0
        assert untrack_rules(lab) == 2  # v4 and v6 (prerouting; untrack_out has its own)
    assert broken(before, lab.check()) == 0


def test_untrack_left_alone_while_other_rules_use_conntrack(lab: Lab) -> None:
    """A stateful firewall rule elsewhere (`ct state established accept`) needs the table:
    the agent does not untrack, says why, and untracks once that rule is gone (rechecked
    by the full pass)."""
    lab.x(
        "r",
        "nft -f - <<'EOF'\ntable inet fw {\n chain input { type filter hook input priority 0;"
        " ct state established,related accept; }\n}\nEOF",
    )
    try:
        lab.start_agent("kernel", *VIPS, extra=("--reconcile-interval", "0.1"))
        wait_agent(lab, what="agent", timeout=60)
        assert untrack_rules(lab) == 0
        non_vip_traffic(lab)
        assert entries(lab, f"dst={S1} ") > 0
        log = (lab.tmp / "agent.log").read_text()
        assert "event=untrack-skipped" in log and "inet fw chain input" in log, log[-2000:]
    finally:
        lab.x("r", "nft delete table inet fw", check=False)
    # full pass every 60 intervals: 6 s here
    wait_until(lambda: untrack_rules(lab) == 2, timeout=60, what="the untrack rules")
    lab.x("r", "conntrack -F")  # r's own table: the entries made while tracked
    non_vip_traffic(lab)
    assert entries(lab, f"dst={S1} ") == 0
    assert "event=untrack-others" in (lab.tmp / "agent.log").read_text()


def flood(lab: Lab, n: int) -> dict[str, int]:
    out = lab.x(
        "c",
        f"{sys.executable} -m dfagent.lab.synflood --dst {VIP4} --dport {PORT} --rate 0"
        f" --max {n} --seconds 30",
    )
    return dict(json.loads(out))


@pytest.mark.parametrize("guard", [True, False], ids=["syn-untracked", "syn-tracked"])
def test_syn_guard_pins_from_the_ack_and_spoofed_syns_take_no_entry(lab: Lab, guard: bool) -> None:
    """--syn-untracked: 3000 spoofed SYNs leave no entry (without it: one each), and the
    connections opened after them are pinned from their first ACK: every one has a marked
    entry, and none breaks when s1 leaves the ECMP set."""
    lab.start_agent("kernel", *VIPS, extra=("--syn-untracked",) if guard else ())
    wait_agent(lab, what="agent", timeout=60)
    sent = flood(lab, 3000)
    assert sent["sent"] == 3000 and sent["errors"] == 0, sent
    spoofed = entries(lab, "src=100.")
    print(f"guard={guard}: {spoofed} entries from 3000 spoofed SYNs")
    if not guard:
        assert spoofed >= 2900
        return
    assert spoofed == 0
    before = lab.open(30, 20)
    marked = sum(
        lab.x("r", f"conntrack -L -f {f} -m {FIELD}").count("mark=") for f in ("ipv4", "ipv6")
    )
    assert marked == 50, marked
    lab.set_members(("s2", "s3"))
    after = lab.check()
    assert broken(before, after) == 0, list(zip(before, after, strict=True))


def test_syn_guard_needs_loose_tracking(lab: Lab) -> None:
    """With nf_conntrack_tcp_loose=0 the first ACK makes no entry: refused in one line,
    nothing installed."""
    lab.x("r", "sysctl -qw net.netfilter.nf_conntrack_tcp_loose=0")
    try:
        p = subprocess.run(
            ["ip", "netns", "exec", lab.ns["r"], DFAGENT, "linux", "kernel", *VIPS,
             "--syn-untracked", "--state-dir", str(lab.tmp / "state")],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    finally:
        lab.x("r", "sysctl -qw net.netfilter.nf_conntrack_tcp_loose=1")
    assert p.returncode != 0
    assert p.stderr.strip().startswith("error:") and "nf_conntrack_tcp_loose" in p.stderr
    assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert "dfagent" not in lab.x("r", "nft list tables")


def test_bench_synflood_small() -> None:
    """`dfagent bench synflood` at a small size, the table preloaded to 3000 free slots:
    0 pinned connections broken in every mode; kernel mode as it was drops flows (table
    full), the guard drops none and every new connection succeeds, like plain ECMP."""
    from dfagent.bench.synflood import MODES, SynFloodBench

    b = SynFloodBench(30, flood_rate=1500, new_rate=10, measure=6, leave_free=3000)
    modes = b.run(list(MODES))["modes"]
    print(json.dumps(modes))
    for m in modes.values():
        assert m["opened"] == 30 and m["broken"] == 0
    assert modes["kernel"]["ct_drops"] > 0
    guard, ecmp = modes["kernel-guard"], modes["ecmp"]
    assert guard["ct_drops"] == 0 and guard["new"]["ok"] == guard["new"]["attempted"] > 0
    assert guard["ct_count_flooded"] < guard["ct_max"] - 2000  # the flood took no entries
    assert ecmp["new"]["ok"] == ecmp["new"]["attempted"]


def test_bench_untrack_small() -> None:
    """`dfagent bench untrack` at a small size: no entry for non-VIP flows, one per held VIP
    connection, and a forwarding rate measured in every mode."""
    from dfagent.bench.untrack import UntrackBench

    r = UntrackBench(rounds=2, seconds=0.5, flows=64).run()
    print(json.dumps(r))
    e = r["entries"]
    assert e["non_vip"] == 0 and e["vip"] == e["vip_connections"] == 20
    assert all(v > 0 for v in r["median_pps"].values())
