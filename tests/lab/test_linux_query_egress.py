"""`query` egress of the linux-nftables profile against what lb really forwards, on the
resilient-ecmp lab (hash policy 3, fields 0x37): for 60 IPv4 and 60 IPv6 connections from
fixed client ports, the kernel's RTM_GETROUTE answer (iif, ipproto, sport, dport) on lb is
compared with the server that answers the connection. IPv4 agrees for every flow; IPv6 does
not (the question is hashed from the flow, forwarding from the packet: see
dfagent/backends/linux/egress.py), so KernelEgress declines IPv6 flows. Prints agreed/total
for both families."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from dfagent.bench.pcc import Holder
from dfagent.lab import runner
from dfagent.lab.state import LabState
from tests.eos.test_eapi_linux_datapath import CLIENT, VIP, ask, on
from tests.lab.lb_agent import VIP4, LbAgent, lab_up, tmp, wait_for

pytestmark = pytest.mark.lab
__all__ = ["lab_up", "tmp"]
PORTS = range(31000, 31060)
BY_DEV = {f"eth{n + 1}": f"s{n}" for n in (1, 2, 3, 4)}

# Runs on lb: the raw kernel answer (interface) per flow, and KernelEgress's next hop.
QUERY = r"""
import json, socket, sys
from dfagent.backends.linux.egress import KernelEgress
from dfagent.backends.linux.rtnl import route_get
out = {}
k = KernelEgress()
for fam, src, dst, sport in json.loads(sys.argv[1]):
    iif = socket.if_nametoindex("eth1")
    got = route_get(dst, src, iif, 6, sport, 80)
    dev = socket.if_indextoname(got[0]) if got else None
    out[f"{fam}:{sport}"] = [dev, k.nexthop(src, dst, sport, 80)]
print(json.dumps(out))
"""


def test_query_egress_agrees_with_forwarding_for_ipv4_and_declines_ipv6(
    lab_up: LabState,
) -> None:
    conns = [(fam, p) for fam in (4, 6) for p in PORTS]
    items = [(fam, CLIENT[fam], VIP[fam], p) for fam, p in conns]
    asked = json.loads(on(lab_up, "lb", [sys.executable, "-c", QUERY, json.dumps(items)]))
    got = ask(lab_up, conns)
    agreed = {4: 0, 6: 0}
    for fam, p in conns:
        dev, nexthop = asked[f"{fam}:{p}"]
        server = got[f"{fam}:{p}"]
        assert server is not None, f"no answer for {fam}:{p}"
        agreed[fam] += BY_DEV.get(dev) == server
        if fam == 4:  # the gateway on that interface: sN's address on its link
            assert nexthop == f"10.2.{server[1:]}.2", (p, dev, nexthop, server)
        else:
            assert nexthop is None
    total = len(PORTS)
    print(f"query egress agreed with forwarding: IPv4 {agreed[4]}/{total}, "
          f"IPv6 {agreed[6]}/{total}")  # fmt: skip
    assert agreed[4] == total
    servers = {got[f"4:{p}"] for p in PORTS}
    assert len(servers) == 3, servers  # the ports spread: a constant answer would not pass


def test_map_mode_pins_ipv4_flows_by_query_when_the_mirror_names_no_member(
    lab_up: LabState, tmp: Path
) -> None:
    """The agent (map mode, `mirror.egress: query`) gets mirrors whose session it does not
    know: IPv4 flows are pinned to the kernel's answer and survive s4 joining the ECMP set;
    IPv6 ones are counted as SYNs of no known session, not pinned."""
    agent = LbAgent(lab_up, tmp, "mirror")
    agent.cfg["mirror"] = {"sources": ["127.0.0.1"], "egress": "query"}  # no sessions
    agent.write(agent.cfg)
    holder = Holder(lab_up)
    try:
        agent.start()
        opened = holder.ask("open", addrs=[VIP4], port=80, count=60)
        assert opened["opened"] == 60, opened
        wait_for(lambda: map_size(lab_up, "pin4") >= 60, "60 IPv4 pins")
        v6 = ask(lab_up, [(6, p) for p in range(32000, 32010)])
        assert None not in v6.values()
        assert map_size(lab_up, "pin6") == 0
        on = [*runner.exec_argv(lab_up, "s4", ["vtysh"]), "-c", "configure terminal", "-c",
              "router bgp 65104", "-c", "address-family ipv4 unicast", "-c",
              f"network {VIP4}/32"]  # fmt: skip
        subprocess.run(on, check=True, capture_output=True)
        wait_for(lambda: "s4" in holder.ask("fresh", count=40)["answers"], "s4 in the ECMP set")
        chk = holder.ask("check")
        assert chk["broken"] == 0 and chk["alive"] == 60, chk
        agent.stop()  # its last report: the IPv6 SYNs counted, not pinned
        m = re.findall(r"map-pins pinned=(\d+) .* unknown_session=(\d+)", agent.log())
        assert m and int(m[-1][0]) >= 60 and int(m[-1][1]) >= 10, m[-1:]
    finally:
        holder.close()
        agent.close()


def map_size(state: LabState, name: str) -> int:
    argv = runner.exec_argv(state, "lb", ["nft", "-j", "list", "map", "inet", "dfagent", name])
    out = json.loads(subprocess.run(argv, capture_output=True, text=True, check=True).stdout)
    return sum(len(o["map"].get("elem", [])) for o in out["nftables"] if "map" in o)
