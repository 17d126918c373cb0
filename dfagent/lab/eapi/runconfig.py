"""The running config of the test switch beyond DirectFlow: what a drain on EOS touches.

Prefix-lists, route-maps and `router bgp` neighbours' route-maps are kept as data, rendered
as EOS prints them in `show running-config`, and evaluated (inbound policy on BGP paths) so
`show ip bgp VIP` answers what the switch would select after a drain.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from dfagent.lab.eapi.directflow import (
    ETH_ARP,
    ETH_IPV4,
    ETH_IPV6,
    FlowConfig,
    FlowTable,
    IPAddress,
    IPNetwork,
    within,
)


@dataclass(frozen=True)
class PrefixEntry:
    seq: int
    permit: bool
    prefix: IPNetwork
    ge: int | None = None
    le: int | None = None

    def matches(self, net: IPNetwork) -> bool:
        if not within(net, self.prefix):
            return False
        if self.ge is None and self.le is None:
            return net.prefixlen == self.prefix.prefixlen
        lo = self.ge if self.ge is not None else self.prefix.prefixlen
        hi = self.le if self.le is not None else net.max_prefixlen
        return lo <= net.prefixlen <= hi

    def render(self) -> str:
        text = f"seq {self.seq} {'permit' if self.permit else 'deny'} {self.prefix}"
        if self.ge is not None:
            text += f" ge {self.ge}"
        if self.le is not None:
            text += f" le {self.le}"
        return text


@dataclass
class RouteMapEntry:
    permit: bool
    seq: int
    match_nexthop_pl: str | None = None  # match ip next-hop prefix-list NAME
    match_address_pl: str | None = None  # match ip address prefix-list NAME
    match_nexthop6_pl: str | None = None  # match ipv6 next-hop prefix-list NAME
    match_address6_pl: str | None = None  # match ipv6 address prefix-list NAME
    set_local_pref: int | None = None

    def lines(self) -> list[str]:
        out = []
        if self.match_address_pl:
            out.append(f"match ip address prefix-list {self.match_address_pl}")
        if self.match_nexthop_pl:
            out.append(f"match ip next-hop prefix-list {self.match_nexthop_pl}")
        if self.match_address6_pl:
            out.append(f"match ipv6 address prefix-list {self.match_address6_pl}")
        if self.match_nexthop6_pl:
            out.append(f"match ipv6 next-hop prefix-list {self.match_nexthop6_pl}")
        if self.set_local_pref is not None:
            out.append(f"set local-preference {self.set_local_pref}")
        return out


@dataclass
class Neighbor:
    remote_as: int | None = None
    peer_group: str | None = None  # this neighbour is a member of that group
    is_group: bool = False  # `neighbor NAME peer group`
    route_map_in: str | None = None
    route_map_out: str | None = None


@dataclass
class Bgp:
    asn: int
    router_id: str | None = None
    maximum_paths: tuple[int, int | None] | None = None
    neighbors: dict[str, Neighbor] = field(default_factory=dict)

    def neighbor(self, key: str) -> Neighbor:
        return self.neighbors.setdefault(key, Neighbor())


@dataclass
class RunningConfig:
    hostname: str
    prefix_lists: dict[str, dict[int, PrefixEntry]] = field(default_factory=dict)  # ip
    prefix_lists6: dict[str, dict[int, PrefixEntry]] = field(default_factory=dict)  # ipv6
    route_maps: dict[str, dict[int, RouteMapEntry]] = field(default_factory=dict)
    bgp: Bgp | None = None

    # -- prefix-lists ----------------------------------------------------------------------

    def plists(self, version: int) -> dict[str, dict[int, PrefixEntry]]:
        """`ip prefix-list` and `ipv6 prefix-list` names are separate, as on EOS."""
        return self.prefix_lists if version == 4 else self.prefix_lists6

    def add_prefix(self, name: str, entry: PrefixEntry | None, version: int = 4) -> None:
        lists = self.plists(version)
        lists.setdefault(name, {})
        if entry is not None:
            lists[name][entry.seq] = entry

    def next_prefix_seq(self, name: str, version: int = 4) -> int:
        seqs = self.plists(version).get(name, {})
        return (max(seqs) // 10 + 1) * 10 if seqs else 10

    def prefix_list_permits(self, name: str, net: IPNetwork) -> bool:
        """A prefix-list that does not exist matches nothing; no entry matching: deny.
        The list is looked up in the family of `net`."""
        entries = self.plists(net.version).get(name, {})
        for seq in sorted(entries):
            if entries[seq].matches(net):
                return entries[seq].permit
        return False

    # -- route-maps ------------------------------------------------------------------------

    def route_map_entry(self, name: str, permit: bool, seq: int) -> RouteMapEntry:
        entries = self.route_maps.setdefault(name, {})
        entry = entries.get(seq)
        if entry is None:
            entry = entries[seq] = RouteMapEntry(permit=permit, seq=seq)
        entry.permit = permit
        return entry

    def apply_route_map(
        self, name: str, prefix: IPNetwork, nexthop: IPAddress, local_pref: int
    ) -> int | None:
        """Inbound policy on one path: its local preference, or None when denied.

        A route-map that does not exist denies everything, as does falling off its end.
        """
        entries = self.route_maps.get(name)
        if not entries:
            return None
        host = ipaddress.ip_network(nexthop)
        for seq in sorted(entries):
            e = entries[seq]
            # An `ip` clause never matches an IPv6 next hop (or prefix), nor `ipv6` an IPv4 one;
            # the next hop's family counts for next-hop clauses (IPv4 routes may have IPv6
            # next hops, RFC 5549).
            nh4 = host.version == 4
            if (e.match_nexthop_pl and not nh4) or (e.match_nexthop6_pl and nh4):
                continue
            p4 = prefix.version == 4
            if (e.match_address_pl and not p4) or (e.match_address6_pl and p4):
                continue
            nh_pl = e.match_nexthop_pl or e.match_nexthop6_pl
            addr_pl = e.match_address_pl or e.match_address6_pl
            if nh_pl and not self.prefix_list_permits(nh_pl, host):
                continue
            if addr_pl and not self.prefix_list_permits(addr_pl, prefix):
                continue
            if not e.permit:
                return None
            return e.set_local_pref if e.set_local_pref is not None else local_pref
        return None

    def inbound_route_map(self, peer: str, peer_group: str | None) -> str | None:
        """The route-map applied to paths from a peer: its own, else its group's."""
        if self.bgp is None:
            return None
        own = self.bgp.neighbors.get(peer)
        if own is not None and own.route_map_in:
            return own.route_map_in
        group = peer_group or (own.peer_group if own else None)
        if group and group in self.bgp.neighbors:
            return self.bgp.neighbors[group].route_map_in
        return None

    # -- rendering -------------------------------------------------------------------------

    def render(
        self,
        flows: FlowTable,
        header: list[str],
        policy_blocks: list[list[str]],
        startup: bool = False,
    ) -> str:
        """`show running-config` text: EOS layout, 3 spaces per level, `!` between blocks.

        startup: what `copy running-config startup-config` saves (no `no persistent` flows).
        """
        blocks: list[list[str]] = [header, [f"hostname {self.hostname}"], *policy_blocks]
        for name in sorted(self.prefix_lists):
            entries = self.prefix_lists[name]
            blocks.append([f"ip prefix-list {name} {entries[s].render()}" for s in sorted(entries)])
        for name in sorted(self.prefix_lists6):  # IPv6 lists print as a block
            entries = self.prefix_lists6[name]
            blocks.append(
                [f"ipv6 prefix-list {name}"]
                + [f"   {entries[s].render()}" for s in sorted(entries)]
            )
        for name in sorted(self.route_maps):
            for seq in sorted(self.route_maps[name]):
                e = self.route_maps[name][seq]
                kind = "permit" if e.permit else "deny"
                blocks.append([f"route-map {name} {kind} {seq}"] + ["   " + x for x in e.lines()])
        if self.bgp is not None:
            blocks.append(_render_bgp(self.bgp))
        if flows.enabled or flows.entries():
            blocks.append(_render_directflow(flows, startup))
        lines: list[str] = []
        for block in blocks:
            if block:
                lines.extend(block)
                lines.append("!")
        lines.append("end")
        return "\n".join(lines) + "\n"


def _render_bgp(bgp: Bgp) -> list[str]:
    out = [f"router bgp {bgp.asn}"]
    if bgp.router_id:
        out.append(f"   router-id {bgp.router_id}")
    if bgp.maximum_paths:
        paths, ecmp = bgp.maximum_paths
        out.append(f"   maximum-paths {paths}" + (f" ecmp {ecmp}" if ecmp else ""))
    groups = [k for k, n in bgp.neighbors.items() if n.is_group]
    others = [k for k, n in bgp.neighbors.items() if not n.is_group]
    for key in groups + others:
        n = bgp.neighbors[key]
        if n.is_group:
            out.append(f"   neighbor {key} peer group")
        if n.peer_group:
            out.append(f"   neighbor {key} peer group {n.peer_group}")
        if n.remote_as is not None:
            out.append(f"   neighbor {key} remote-as {n.remote_as}")
        if n.route_map_in:
            out.append(f"   neighbor {key} route-map {n.route_map_in} in")
        if n.route_map_out:
            out.append(f"   neighbor {key} route-map {n.route_map_out} out")
    return out


def ethertype_word(value: int) -> str:
    return {ETH_IPV4: "ip", ETH_IPV6: "ipv6", ETH_ARP: "arp"}.get(value, f"0x{value:04x}")


def proto_word(value: int) -> str:
    return {6: "tcp", 17: "udp", 1: "icmp"}.get(value, str(value))


def flow_lines(cfg: FlowConfig) -> list[str]:
    """The lines of one `flow NAME` block, in the order EOS prints them."""
    out: list[str] = []
    if not cfg.persistent:
        out.append("no persistent")
    if cfg.priority:
        out.append(f"priority {cfg.priority}")
    if cfg.idle_timeout:
        out.append(f"timeout idle {cfg.idle_timeout}")
    if cfg.hard_timeout:
        out.append(f"timeout hard {cfg.hard_timeout}")
    if cfg.in_interfaces:
        out.append("match input interface " + " ".join(cfg.in_interfaces))
    if cfg.ethertype is not None:
        out.append(f"match ethertype {ethertype_word(cfg.ethertype)}")
    for word, net in (("source", cfg.src), ("destination", cfg.dst)):
        if net is not None:
            fam = "ip" if net.version == 4 else "ipv6"
            addr = str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net)
            out.append(f"match {word} {fam} {addr}")
    if cfg.ip_proto is not None:
        out.append(f"match ip protocol {proto_word(cfg.ip_proto)}")
    if cfg.sport is not None:
        out.append(f"match source port {cfg.sport}")
    if cfg.dport is not None:
        out.append(f"match destination port {cfg.dport}")
    if cfg.drop:
        out.append("action drop")
    if cfg.out_interfaces:
        out.append("action output interface " + " ".join(cfg.out_interfaces))
    if cfg.nexthop is not None:
        out.append(f"action output nexthop {cfg.nexthop}")
    return out


def _render_directflow(flows: FlowTable, startup: bool) -> list[str]:
    out = ["directflow", "   no shutdown" if flows.enabled else "   shutdown"]
    for entry in flows.entries():
        if startup and not entry.config.persistent:
            continue
        out.append(f"   flow {entry.name}")
        out.extend("      " + line for line in flow_lines(entry.config))
    return out


def section(text: str, regex: str) -> str:
    """`| section REGEX`: matching lines with their children, under their parents' headers."""
    pattern = re.compile(regex)
    lines = [x for x in text.splitlines() if x.strip() not in ("!", "end") and x.strip()]
    lines = [x for x in lines if not x.startswith("! ")]

    def depth(line: str) -> int:
        return len(line) - len(line.lstrip(" "))

    keep: set[int] = set()
    for i, line in enumerate(lines):
        if not pattern.search(line):
            continue
        d = depth(line)
        keep.add(i)
        j = i + 1
        while j < len(lines) and depth(lines[j]) > d:  # children
            keep.add(j)
            j += 1
        want = d
        for k in range(i - 1, -1, -1):  # parents
            if depth(lines[k]) < want:
                keep.add(k)
                want = depth(lines[k])
                if want == 0:
                    break
    out: list[str] = []
    for i in sorted(keep):
        if out and depth(lines[i]) == 0:
            out.append("!")
        out.append(lines[i])
    return "\n".join(out) + ("\n" if out else "")


def include(text: str, regex: str) -> str:
    """`| include REGEX` (also `| grep`): the matching lines."""
    pattern = re.compile(regex)
    out = [x for x in text.splitlines() if pattern.search(x)]
    return "\n".join(out) + ("\n" if out else "")
