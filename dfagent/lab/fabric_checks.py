"""Checks of a spine-leaf fabric, computed from the topology's node labels.

Labels (set by the generator): `role: spine|leaf|host`, `loopback: A` on spines and leaves,
`address: A` on hosts. Expectations follow from the topology — "one path per spine" for any
number of spines — so a generated lab's lab.yaml is the same for every size.

Never asserted: link-local addresses and ifindexes (they change every run). A next hop is
told apart by its interface, and must be `via inet6` (IPv4 over an IPv6 link-local next hop).
"""

from __future__ import annotations

import json
import re
from typing import Any

from dfagent.lab.checks import ReadsLab
from dfagent.lab.topology import Topology

VNI = 100
_TYPE3 = re.compile(r"\[3\]:\[0\]:\[32\]:\[([0-9.]+)\]")


def _role(topo: Topology, role: str) -> list[str]:
    return [n for n, node in topo.nodes.items() if node.labels.get("role") == role]


def _ports_towards(topo: Topology, node: str, peer: str) -> set[str]:
    """Interfaces of `node` cabled to `peer` (from the topology's links)."""
    out = set()
    for link in topo.links:
        if link.a.node == node and link.b.node == peer:
            out.add(link.a.iface)
        elif link.b.node == node and link.a.node == peer:
            out.add(link.b.iface)
    return out


def _nexthops(route: dict[str, Any]) -> list[dict[str, Any]]:
    return list(route.get("nexthops") or [route])


def loopbacks_ecmp(ctx: ReadsLab, without: list[str] | None = None) -> list[str]:
    """From every leaf: every other leaf's loopback over one `via inet6` next hop per live
    spine (exactly those uplinks), every live spine's loopback over the uplink to it.
    `without`: spines whose links are down (their loopbacks are not expected)."""
    topo = ctx.lab.topology
    gone = set(without or [])
    spines = [s for s in _role(topo, "spine") if s not in gone]
    problems = []
    for leaf in _role(topo, "leaf"):
        routes = {r["dst"]: r for r in json.loads(ctx.run(leaf, "ip -j route show proto bgp"))}
        uplinks = {s: _ports_towards(topo, leaf, s) for s in spines}
        targets = [(n, set().union(*uplinks.values())) for n in _role(topo, "leaf") if n != leaf]
        targets += [(s, uplinks[s]) for s in spines]
        for target, want_devs in targets:
            lo = topo.nodes[target].labels["loopback"]
            route = routes.get(lo)
            if route is None:
                problems.append(f"{leaf}: no BGP route to {target}'s loopback {lo}")
                continue
            hops = _nexthops(route)
            devs = sorted(h.get("dev", "?") for h in hops)
            if devs != sorted(want_devs):
                problems.append(f"{leaf}: {lo} ({target}) via {devs}, expected {sorted(want_devs)}")
            not_v6 = [h.get("dev") for h in hops if (h.get("via") or {}).get("family") != "inet6"]
            if not_v6:
                problems.append(f"{leaf}: {lo} next hop(s) on {not_v6} not via inet6")
    if gone:
        for leaf in _role(topo, "leaf"):
            dsts = {r["dst"] for r in json.loads(ctx.run(leaf, "ip -j route show proto bgp"))}
            stale = [s for s in gone if topo.nodes[s].labels["loopback"] in dsts]
            if stale:
                problems.append(f"{leaf}: still routes to the loopback of {stale}")
    return problems


def evpn_vteps(ctx: ReadsLab) -> list[str]:
    """Every leaf holds an EVPN type-3 (IMET) route from every VTEP, and the kernel floods
    VNI 100's broadcast to every other VTEP."""
    topo = ctx.lab.topology
    vteps = {topo.nodes[n].labels["loopback"] for n in _role(topo, "leaf")}
    problems = []
    for leaf in _role(topo, "leaf"):
        own = topo.nodes[leaf].labels["loopback"]
        out = json.loads(ctx.run(leaf, "vtysh -c 'show bgp l2vpn evpn route type multicast json'"))
        seen = {m.group(1) for rd in out.values() if isinstance(rd, dict) for k in rd
                for m in [_TYPE3.fullmatch(k)] if m}  # fmt: skip
        if seen != vteps:
            problems.append(f"{leaf}: type-3 routes from {sorted(seen)}, expected {sorted(vteps)}")
        # the kernel's flood list (all-zero MAC entries of the vxlan device) is what zebra made
        # of the type-3 routes: head-end replication to each remote VTEP
        fdb = json.loads(ctx.run(leaf, f"bridge -j fdb show dev vxlan{VNI}"))
        flood = {e.get("dst") for e in fdb if e.get("mac") == "00:00:00:00:00:00"}
        if flood != vteps - {own}:
            problems.append(
                f"{leaf}: vxlan{VNI} floods to {sorted(flood)}, expected {sorted(vteps - {own})}"
            )
    return problems


def host_pings(ctx: ReadsLab) -> list[str]:
    """Every host pings every other host (all on other leaves, so over VXLAN)."""
    topo = ctx.lab.topology
    hosts = {h: topo.nodes[h].labels["address"] for h in _role(topo, "host")}
    problems = []
    for src in hosts:
        others = " ".join(a for h, a in hosts.items() if h != src)
        # in parallel per source: one lost first ping (ARP over the overlay) is retried
        script = (
            f"for a in {others}; do (ping -q -c1 -W1 $a >/dev/null || "
            f"ping -q -c1 -W1 $a >/dev/null || echo $a) & done; wait"
        )
        failed = ctx.run(src, ["sh", "-c", script]).split()
        problems += [f"{src} cannot ping {a}" for a in failed]
    return problems
