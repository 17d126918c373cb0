"""Routing-table side of the Linux backend (pyroute2): ECMP sets, liveness, rules, tables.

Everything here works in the network namespace the process runs in.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

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
    def __init__(self) -> None:
        from pyroute2 import IPRoute  # only backends import pyroute2

        # strict checking lets the kernel filter dumps by table (a full BGP table is never
        # dumped just to read dfagent's few per-next-hop tables)
        self.ipr: Any = IPRoute(strict_check=True)
        self._names: dict[int, str] = {}
        self._links: dict[str, tuple[int, int]] = {}  # name → (ifindex, flags)

    def close(self) -> None:
        self.ipr.close()

    # ── interfaces ──────────────────────────────────────────────────────────────
    def ifname(self, index: int) -> str:
        name = self._names.get(index)
        if name is None:
            links = self.ipr.get_links(index)
            name = links[0].get_attr("IFLA_IFNAME") if links else f"if{index}"
            self._names[index] = str(name)
        return str(name)

    def ifindex(self, name: str) -> int | None:
        if name in self._links:
            return self._links[name][0]
        found = self.ipr.link_lookup(ifname=name)
        return int(found[0]) if found else None

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
            msgs = self.ipr.route("get", dst=addr)
        except Exception:
            return None
        for m in msgs:
            oif = m.get_attr("RTA_OIF")
            if oif:
                return self.ifname(int(oif))
        return None

    def refresh_names(self) -> None:
        """One link dump per reconcile: names, indexes and up/down for every link (a
        netlink round trip per next hop cost the agent ~30 ms per reconcile)."""
        links = {
            str(link.get_attr("IFLA_IFNAME")): (int(link["index"]), int(link["flags"]))
            for link in self.ipr.get_links()
        }
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
            idx = self.ifindex(ifname)
            links = self.ipr.get_links(idx) if idx is not None else []
            if not links:
                return False
            flags = int(links[0]["flags"])
        return bool(flags & IFF_UP) and bool(flags & IFF_LOWER_UP)

    def neighbour_states(self) -> dict[tuple[int, str], int]:
        """(ifindex, address) → NUD state for every neighbour entry."""
        out: dict[tuple[int, str], int] = {}
        for msg in self.ipr.get_neighbours():
            dst = msg.get_attr("NDA_DST")
            if dst is None:
                continue
            with contextlib.suppress(ValueError):
                out[(int(msg["ifindex"]), str(ipaddress.ip_address(dst)))] = int(msg["state"])
        return out

    # ── what dfagent owns ───────────────────────────────────────────────────────
    def owned_rules(self) -> list[OwnedRule]:
        out = []
        for fam in (4, 6):
            for r in self.ipr.get_rules(family=AF[fam]):
                table = r.get_attr("FRA_TABLE") or r.get("table")
                prio = r.get_attr("FRA_PRIORITY")
                if table is None or not is_dfagent_table(int(table)):
                    continue
                if prio != RULE_PRIORITY and r.get_attr("FRA_PROTOCOL") != RT_PROTO:
                    continue
                mask = r.get_attr("FRA_FWMASK")
                out.append(
                    OwnedRule(
                        fam,
                        int(r.get_attr("FRA_FWMARK") or 0),
                        int(table),
                        int(prio or 0),
                        0xFFFFFFFF if mask is None else int(mask),
                    )
                )
        return out

    def fwmark_rules(self) -> list[tuple[int, int, int, int]]:
        """(family, priority, fwmark, fwmask) of every other ``ip rule`` that has a fwmark."""
        out = []
        for fam in (4, 6):
            for r in self.ipr.get_rules(family=AF[fam]):
                table = r.get_attr("FRA_TABLE") or r.get("table")
                if table is not None and is_dfagent_table(int(table)):
                    continue
                mark = r.get_attr("FRA_FWMARK")
                mask = r.get_attr("FRA_FWMASK")
                if mark is None and mask is None:
                    continue
                out.append(
                    (fam, int(r.get_attr("FRA_PRIORITY") or 0), int(mark or 0),
                     0xFFFFFFFF if mask is None else int(mask))
                )  # fmt: skip
        return out

    def add_rule(self, fam: int, mark: int, mask: int, table: int) -> None:
        """``fwmark MARK/MASK lookup TABLE``: only dfagent's bits are compared, so another
        tool setting other bits of the same packet does not unpin it."""
        self.ipr.rule(
            "add",
            family=AF[fam],
            priority=RULE_PRIORITY,
            fwmark=mark,
            fwmask=mask,
            table=table,
            protocol=RT_PROTO,
        )

    def del_rule(self, rule: OwnedRule) -> None:
        kw: dict[str, Any] = {"family": AF[rule.family], "table": rule.table}
        if rule.priority:
            kw["priority"] = rule.priority
        if rule.mark:
            kw.update(fwmark=rule.mark, fwmask=rule.mask)
        with contextlib.suppress(Exception):
            self.ipr.rule("del", **kw)

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
        oif = self.ifindex(nh.ifname)
        if oif is None:
            raise LookupError(f"interface {nh.ifname} is gone")
        kw: dict[str, Any] = {
            "family": AF[net.version],
            "dst": str(net.network_address),
            "dst_len": net.prefixlen,
            "table": table,
            "proto": RT_PROTO,
            "oif": oif,  # always carry the interface (link-local v6 next hops need it)
        }
        if nh.via_v6_for_v4:
            kw["via"] = {"family": socket.AF_INET6, "addr": nh.gateway}
        else:
            kw["gateway"] = nh.gateway
        self.ipr.route("replace", **kw)

    def del_route(self, route: OwnedRoute) -> None:
        net = ipaddress.ip_network(route.dst)
        with contextlib.suppress(Exception):
            self.ipr.route(
                "del",
                family=AF[route.family],
                dst=str(net.network_address),
                dst_len=net.prefixlen,
                table=route.table,
            )
