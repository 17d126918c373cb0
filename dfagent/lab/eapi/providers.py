"""Where the test switch's routing answers come from: `show ip route`, `show ip bgp`,
`show load-balance destination`.

The switch asks a `Providers` object; the default, `StaticProviders`, answers from data a
test sets (received BGP paths, static routes) and applies the switch's own inbound BGP
policy from its running config, so a drain (`set local-preference 1`) changes what
`show ip bgp VIP` and `show ip route VIP` report. A lab provider can read FRR and the kernel
instead and return the same data classes.
"""

from __future__ import annotations

import ipaddress
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from dfagent.lab.eapi.directflow import IPAddress, IPNetwork, within
from dfagent.lab.eapi.runconfig import RunningConfig


@dataclass(frozen=True)
class Via:
    nexthop: IPAddress
    interface: str


@dataclass(frozen=True)
class Route:
    prefix: IPNetwork
    vias: tuple[Via, ...]
    route_type: str = "eBGP"  # EOS names: eBGP, iBGP, static, connected, …
    preference: int = 200
    metric: int = 0


@dataclass(frozen=True)
class BgpPath:
    """A path as received from a peer, before the switch's inbound policy."""

    nexthop: IPAddress
    peer: str  # the neighbour's address
    peer_group: str | None = None
    interface: str = ""  # where the next hop is reached (for `show ip route`)
    local_pref: int = 100
    as_path: str = ""
    med: int = 0


@dataclass(frozen=True)
class BgpPathState:
    """A path after policy and best-path selection, as `show ip bgp` reports it."""

    path: BgpPath
    local_pref: int
    valid: bool
    active: bool
    ecmp_head: bool
    ecmp: bool
    ecmp_contributor: bool


@dataclass(frozen=True)
class BgpEntry:
    prefix: IPNetwork
    paths: tuple[BgpPathState, ...]


@dataclass(frozen=True)
class FiveTuple:
    ingress_interface: str
    src: IPAddress
    dst: IPAddress
    proto: int
    sport: int
    dport: int


class Providers(Protocol):
    def route(self, target: IPAddress | IPNetwork) -> Route | None:
        """The route `show ip route TARGET` prints (longest match for an address)."""
        ...

    def routes(self, version: int) -> list[Route]:
        """Every route of one family (`show ip route` without an argument)."""
        ...

    def bgp(self, target: IPAddress | IPNetwork) -> BgpEntry | None: ...

    def bgp_all(self, version: int) -> list[BgpEntry]: ...

    def router_id(self) -> str: ...

    def local_asn(self) -> int: ...

    def egress(self, flow: FiveTuple) -> str | None:
        """The output interface the switch's hash picks for this flow, None if no route."""
        ...


def _select(paths: list[BgpPathState]) -> list[BgpPathState]:
    """Best path and ECMP set: the highest local preference wins; equal ones share (ECMP)."""
    valid = [p for p in paths if p.valid]
    if not valid:
        return paths
    best = max(p.local_pref for p in valid)
    out: list[BgpPathState] = []
    head_done = False
    multi = sum(1 for p in valid if p.local_pref == best) > 1
    for p in paths:
        win = p.valid and p.local_pref == best
        head = win and not head_done
        head_done = head_done or head
        out.append(
            BgpPathState(
                path=p.path,
                local_pref=p.local_pref,
                valid=p.valid,
                active=head,
                ecmp_head=head and multi,
                ecmp=win and multi,
                ecmp_contributor=win and multi,
            )
        )
    return out


def lookup(items: Mapping[IPNetwork, object], target: IPAddress | IPNetwork) -> IPNetwork | None:
    """Longest-prefix match of an address, or the longest prefix covering a prefix."""
    net = ipaddress.ip_network(target)
    best: IPNetwork | None = None
    for prefix in items:
        if within(net, prefix) and (best is None or prefix.prefixlen > best.prefixlen):
            best = prefix
    return best


@dataclass
class StaticProviders:
    """Routing data set by a test; BGP paths go through the switch's inbound policy."""

    config: RunningConfig
    asn: int = 65000
    rid: str = "10.255.255.1"
    static: dict[IPNetwork, Route] = field(default_factory=dict)
    received: dict[IPNetwork, list[BgpPath]] = field(default_factory=dict)
    # Explicit answers for `show load-balance destination`, else a hash over the vias.
    egress_overrides: dict[FiveTuple, str | None] = field(default_factory=dict)

    # -- what tests call -------------------------------------------------------------------

    def add_route(
        self, prefix: str, vias: list[tuple[str, str]], route_type: str = "static"
    ) -> None:
        net = ipaddress.ip_network(prefix)
        self.static[net] = Route(
            prefix=net,
            vias=tuple(Via(ipaddress.ip_address(a), i) for a, i in vias),
            route_type=route_type,
            preference=1 if route_type == "static" else 200,
        )

    def add_bgp_path(
        self,
        prefix: str,
        nexthop: str,
        interface: str,
        peer: str | None = None,
        peer_group: str | None = None,
        local_pref: int = 100,
        as_path: str = "",
    ) -> None:
        net = ipaddress.ip_network(prefix)
        self.received.setdefault(net, []).append(
            BgpPath(
                nexthop=ipaddress.ip_address(nexthop),
                peer=peer or nexthop,
                peer_group=peer_group,
                interface=interface,
                local_pref=local_pref,
                as_path=as_path,
            )
        )

    def withdraw_bgp_path(self, prefix: str, nexthop: str) -> None:
        net = ipaddress.ip_network(prefix)
        addr = ipaddress.ip_address(nexthop)
        paths = [p for p in self.received.get(net, []) if p.nexthop != addr]
        if paths:
            self.received[net] = paths
        else:
            self.received.pop(net, None)

    # -- Providers -------------------------------------------------------------------------

    def router_id(self) -> str:
        return self.rid

    def local_asn(self) -> int:
        return self.config.bgp.asn if self.config.bgp else self.asn

    def _bgp_entry(self, prefix: IPNetwork) -> BgpEntry:
        states: list[BgpPathState] = []
        for p in self.received[prefix]:
            rm = self.config.inbound_route_map(p.peer, p.peer_group)
            lp: int | None = p.local_pref
            if rm is not None:
                lp = self.config.apply_route_map(rm, prefix, p.nexthop, p.local_pref)
            states.append(
                BgpPathState(
                    path=p,
                    local_pref=lp if lp is not None else p.local_pref,
                    valid=lp is not None,
                    active=False,
                    ecmp_head=False,
                    ecmp=False,
                    ecmp_contributor=False,
                )
            )
        return BgpEntry(prefix=prefix, paths=tuple(_select(states)))

    def bgp(self, target: IPAddress | IPNetwork) -> BgpEntry | None:
        prefix = lookup(self.received, target)
        return None if prefix is None else self._bgp_entry(prefix)

    def bgp_all(self, version: int) -> list[BgpEntry]:
        return [self._bgp_entry(p) for p in sorted(self.received) if p.version == version]

    def _bgp_route(self, prefix: IPNetwork) -> Route | None:
        entry = self._bgp_entry(prefix)
        chosen = [s for s in entry.paths if s.ecmp or s.active]
        if not chosen:
            return None
        return Route(
            prefix=prefix,
            vias=tuple(Via(s.path.nexthop, s.path.interface) for s in chosen),
            route_type="eBGP",
        )

    def _table(self) -> dict[IPNetwork, Route]:
        table: dict[IPNetwork, Route] = {}
        for prefix in self.received:
            route = self._bgp_route(prefix)
            if route is not None:
                table[prefix] = route
        table.update(self.static)  # static (distance 1) beats eBGP (200)
        return table

    def route(self, target: IPAddress | IPNetwork) -> Route | None:
        table = self._table()
        prefix = lookup(table, target)
        return None if prefix is None else table[prefix]

    def routes(self, version: int) -> list[Route]:
        table = self._table()
        return [table[p] for p in sorted(table) if p.version == version]

    def egress(self, flow: FiveTuple) -> str | None:
        if flow in self.egress_overrides:
            return self.egress_overrides[flow]
        route = self.route(flow.dst)
        if route is None or not route.vias:
            return None
        key = f"{flow.src}|{flow.dst}|{flow.proto}|{flow.sport}|{flow.dport}".encode()
        return route.vias[zlib.crc32(key) % len(route.vias)].interface
