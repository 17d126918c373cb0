"""Routing-table side of the Linux backend (raw rtnetlink): ECMP sets, liveness, rules, tables.

Everything here works in the network namespace the process runs in.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from dfagent.backends.linux import rtnl_objects
from dfagent.backends.linux.rtnl import (
    RT_TABLE_MAIN,
    RTN_UNICAST,
    Route,
    RouteNetlink,
    RouteOp,
    apply_routes,
    dump_routes,
)
from dfagent.core.marks import RT_PROTO, RULE_PRIORITY, is_dfagent_table
from dfagent.core.nexthops import NextHop

AF = {4: socket.AF_INET, 6: socket.AF_INET6}
IFF_UP = 0x1
IFF_LOWER_UP = 0x10000
NUD_INCOMPLETE = 0x01
NUD_FAILED = 0x20
NUD_GOOD = 0x02 | 0x04 | 0x08 | 0x10 | 0x40 | 0x80  # REACHABLE STALE DELAY PROBE NOARP PERM


@dataclass(frozen=True)
class OwnedRule:
    family: int
    mark: int
    table: int
    priority: int
    mask: int = 0xFFFFFFFF


@dataclass(frozen=True)
class OwnedRoute:
    family: int
    table: int
    dst: str  # prefix text
    gateway: str
    ifname: str


class NetlinkHandle(RouteNetlink, Protocol):
    """What the datapath and its route source do with rtnetlink (:class:`Netlink`; the unit
    tests' fakes)."""

    def route_ifname(self, addr: str) -> str | None: ...
    def owned_rules(self) -> list[OwnedRule]: ...
    def fwmark_rules(self) -> list[tuple[int, int, int, int]]: ...
    def add_rule(self, fam: int, mark: int, mask: int, table: int) -> None: ...
    def del_rule(self, rule: OwnedRule) -> None: ...
    def owned_routes(self, tables: Iterable[int] | None = None) -> list[OwnedRoute]: ...
    def apply_routes(self, ops: Sequence[RouteOp]) -> list[tuple[RouteOp, int]]: ...
    def route_op(self, table: int, dst: str, nh: NextHop) -> RouteOp: ...
    def close(self) -> None: ...


class Netlink:
    """rtnetlink in the process's namespace, without pyroute2 (see :mod:`.rtnl_objects`)."""

    def __init__(self) -> None:
        self._names: dict[int, str] = {}
        self._links: dict[str, tuple[int, int]] = {}  # name → (ifindex, flags)

    def close(self) -> None:
        pass  # each request opens and closes its own socket

    # ── interfaces ──────────────────────────────────────────────────────────────
    def ifname(self, index: int) -> str:
        name = self._names.get(index)
        if name is None:
            link = rtnl_objects.get_link(index=index)
            name = link.name if link is not None else f"if{index}"
            self._names[index] = name
        return name

    def ifindex(self, name: str) -> int | None:
        if name in self._links:
            return self._links[name][0]
        link = rtnl_objects.get_link(name=name)
        return link.index if link is not None else None

    def note_link(self, index: int, name: str, flags: int, deleted: bool) -> None:
        """A link notification: keep names, indexes and flags current between dumps."""
        old = self._names.pop(index, None)
        if old is not None:
            self._links.pop(old, None)
        if not deleted and name:
            self._names[index] = name
            self._links[name] = (index, flags)

    def route_ifname(self, addr: str) -> str | None:
        """The interface the kernel routes ``addr`` out of (None: no route, or no answer)."""
        try:
            oif = rtnl_objects.route_oif(addr)
        except (OSError, ValueError):
            return None
        return self.ifname(oif) if oif else None

    def refresh_names(self) -> None:
        """One link dump per reconcile: names, indexes and up/down for every link (a
        netlink round trip per next hop cost the agent ~30 ms per reconcile)."""
        links = {link.name: (link.index, link.flags) for link in rtnl_objects.dump_links()}
        self._links = links
        self._names = {idx: name for name, (idx, _) in links.items()}

    # ── what the routing table says ─────────────────────────────────────────────
    def main_routes(self, family: int) -> list[Route]:
        """The main table's unicast routes of ``family`` (one kernel-filtered dump)."""
        return dump_routes(family, table=RT_TABLE_MAIN, rtype=RTN_UNICAST)

    # ── liveness ────────────────────────────────────────────────────────────────
    def link_up(self, ifname: str) -> bool:
        """As of the last refresh_names (each reconcile starts with one)."""
        if ifname in self._links:
            flags = self._links[ifname][1]
        else:
            link = rtnl_objects.get_link(name=ifname)
            if link is None:
                return False
            flags = link.flags
        return bool(flags & IFF_UP) and bool(flags & IFF_LOWER_UP)

    def neighbour_states(self) -> dict[tuple[int, str], int]:
        """(ifindex, address) → NUD state for every neighbour entry."""
        return rtnl_objects.neighbour_states()

    # ── what dfagent owns ───────────────────────────────────────────────────────
    def owned_rules(self) -> list[OwnedRule]:
        out = []
        for fam in (4, 6):
            for r in rtnl_objects.dump_rules(fam):
                if not is_dfagent_table(r.table):
                    continue
                if r.priority != RULE_PRIORITY and r.protocol != RT_PROTO:
                    continue
                mask = 0xFFFFFFFF if r.fwmask is None else r.fwmask
                out.append(OwnedRule(fam, r.fwmark or 0, r.table, r.priority or 0, mask))
        return out

    def fwmark_rules(self) -> list[tuple[int, int, int, int]]:
        """(family, priority, fwmark, fwmask) of every other ``ip rule`` that has a fwmark."""
        out = []
        for fam in (4, 6):
            for r in rtnl_objects.dump_rules(fam):
                if is_dfagent_table(r.table) or (r.fwmark is None and r.fwmask is None):
                    continue
                mask = 0xFFFFFFFF if r.fwmask is None else r.fwmask
                out.append((fam, r.priority or 0, r.fwmark or 0, mask))
        return out

    def add_rule(self, fam: int, mark: int, mask: int, table: int) -> None:
        """``fwmark MARK/MASK lookup TABLE``: only dfagent's bits are compared, so another
        tool setting other bits of the same packet does not unpin it."""
        rtnl_objects.add_rule(fam, RULE_PRIORITY, mark, mask, table, RT_PROTO)

    def del_rule(self, rule: OwnedRule) -> None:
        mark, mask = (rule.mark, rule.mask) if rule.mark else (None, None)
        with contextlib.suppress(OSError):
            rtnl_objects.del_rule(rule.family, rule.table, rule.priority or None, mark, mask)

    def owned_routes(self, tables: Iterable[int] | None = None) -> list[OwnedRoute]:
        """Routes dfagent installed (protocol RT_PROTO, table in dfagent's range).

        The dump is filtered by protocol *in the kernel* (strict checking), so a router with
        a full BGP table is not dumped to read dfagent's per-next-hop tables."""
        want = set(tables) if tables is not None else None
        out = []
        for fam in (4, 6):
            for r in dump_routes(fam, protocol=RT_PROTO):
                if not is_dfagent_table(r.table) or (want is not None and r.table not in want):
                    continue
                hop = r.hops[0] if r.hops else None
                gw = hop.gateway if hop is not None else None
                oif = hop.oif if hop is not None else None
                out.append(
                    OwnedRoute(fam, r.table, r.prefix, gw or "", self.ifname(oif) if oif else "")
                )
        return out

    def apply_routes(self, ops: Sequence[RouteOp]) -> list[tuple[RouteOp, int]]:
        """Many table-route replaces/deletes at once (errors per route)."""
        return apply_routes(ops)

    def route_op(self, table: int, dst: str, nh: NextHop) -> RouteOp:
        oif = self.ifindex(nh.ifname)
        if oif is None:
            raise LookupError(f"interface {nh.ifname} is gone")
        fam = 6 if ":" in dst else 4
        return RouteOp(fam, table, dst, nh.gateway, oif, nh.via_v6_for_v4, protocol=RT_PROTO)

    def replace_route(self, table: int, vip: str, nh: NextHop) -> None:
        net = ipaddress.ip_network(vip)
        failed = apply_routes([self.route_op(table, str(net), nh)])
        if failed:
            err = failed[0][1]
            raise OSError(err, f"{vip} table {table} via {nh}: {os.strerror(err)}")

    def del_route(self, route: OwnedRoute) -> None:
        net = ipaddress.ip_network(route.dst)
        fam = 6 if net.version == 6 else 4
        apply_routes([RouteOp(fam, route.table, str(net), delete=True)])
