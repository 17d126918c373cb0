"""Routing-table side of the Linux backend (pyroute2): ECMP sets, liveness, rules, tables.

Everything here works in the network namespace the process runs in.
"""

from __future__ import annotations

import contextlib
import ipaddress
import select
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from dfagent.core.marks import RT_PROTO, RULE_PRIORITY, is_dfagent_table
from dfagent.core.nexthops import IPNetwork, NextHop

AF = {4: socket.AF_INET, 6: socket.AF_INET6}
RTM_F_FIB_MATCH = 0x2000
RTNH_F_DEAD = 1
IFF_UP = 0x1
IFF_LOWER_UP = 0x10000
NUD_INCOMPLETE = 0x01
NUD_FAILED = 0x20
NUD_GOOD = 0x02 | 0x04 | 0x08 | 0x10 | 0x40 | 0x80  # REACHABLE STALE DELAY PROBE NOARP PERM

# rtnetlink multicast groups (legacy bitmask) and RTNLGRP_NEXTHOP (needs ADD_MEMBERSHIP)
RTMGRP_LINK = 0x1
RTMGRP_NEIGH = 0x4
RTMGRP_IPV4_ROUTE = 0x40
RTMGRP_IPV6_ROUTE = 0x400
RTNLGRP_NEXTHOP = 32
SOL_NETLINK = 270
NETLINK_ADD_MEMBERSHIP = 1


@dataclass(frozen=True)
class OwnedRule:
    family: int
    mark: int
    table: int
    priority: int


@dataclass(frozen=True)
class OwnedRoute:
    family: int
    table: int
    dst: str  # prefix text
    gateway: str
    ifname: str


class Netlink:
    def __init__(self) -> None:
        from pyroute2 import IPRoute  # only backends import pyroute2

        # strict checking lets the kernel filter dumps by table (a full BGP table is never
        # dumped just to read dfagent's few per-next-hop tables)
        self.ipr: Any = IPRoute(strict_check=True)
        self._names: dict[int, str] = {}

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
        found = self.ipr.link_lookup(ifname=name)
        return int(found[0]) if found else None

    def refresh_names(self) -> None:
        self._names = {
            int(link["index"]): str(link.get_attr("IFLA_IFNAME")) for link in self.ipr.get_links()
        }

    # ── what the routing table says ─────────────────────────────────────────────
    def ecmp_set(self, vip: IPNetwork) -> set[NextHop]:
        """The next hops of the route the kernel would use for ``vip`` (``get fibmatch``)."""
        fam = vip.version
        try:
            msgs = self.ipr.route(
                "get", family=AF[fam], dst=str(vip.network_address), flags=RTM_F_FIB_MATCH
            )
        except Exception:  # no route (ENETUNREACH) and the like
            return set()
        out: set[NextHop] = set()
        for msg in msgs:
            if msg.get("type", 1) != 1:  # unicast only
                continue
            mp = msg.get_attr("RTA_MULTIPATH")
            if mp:
                for hop in mp:
                    if hop.get("flags", 0) & RTNH_F_DEAD:
                        continue
                    nh = self._nexthop(fam, hop.get("oif"), hop)
                    if nh is not None:
                        out.add(nh)
            else:
                nh = self._nexthop(fam, msg.get_attr("RTA_OIF"), msg)
                if nh is not None:
                    out.add(nh)
        return out

    def _nexthop(self, fam: int, oif: int | None, holder: Any) -> NextHop | None:
        gw = holder.get_attr("RTA_GATEWAY")
        if gw is None:
            via = holder.get_attr("RTA_VIA")
            if isinstance(via, dict):
                gw = via.get("addr")
        if gw is None or not oif:
            return None  # directly connected: nothing to pin to
        return NextHop(fam, self.ifname(int(oif)), str(gw))

    # ── liveness ────────────────────────────────────────────────────────────────
    def link_up(self, ifname: str) -> bool:
        idx = self.ifindex(ifname)
        if idx is None:
            return False
        links = self.ipr.get_links(idx)
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
                out.append(
                    OwnedRule(fam, int(r.get_attr("FRA_FWMARK") or 0), int(table), int(prio or 0))
                )
        return out

    def add_rule(self, fam: int, mark: int) -> None:
        self.ipr.rule(
            "add",
            family=AF[fam],
            priority=RULE_PRIORITY,
            fwmark=mark,
            fwmask=0xFFFFFFFF,
            table=mark,
            protocol=RT_PROTO,
        )

    def del_rule(self, rule: OwnedRule) -> None:
        kw: dict[str, Any] = {"family": AF[rule.family], "table": rule.table}
        if rule.priority:
            kw["priority"] = rule.priority
        if rule.mark:
            kw.update(fwmark=rule.mark, fwmask=0xFFFFFFFF)
        with contextlib.suppress(Exception):
            self.ipr.rule("del", **kw)

    def owned_routes(self, tables: Iterable[int] | None = None) -> list[OwnedRoute]:
        """Routes in dfagent's table-id range (all of them, or of the given tables)."""
        out = []
        for fam in (4, 6):
            if tables is None:
                msgs: list[Any] = list(self.ipr.route("dump", family=AF[fam]))
            else:
                msgs = []
                for t in tables:
                    msgs.extend(self.ipr.get_routes(family=AF[fam], table=t))
            for m in msgs:
                table = m.get_attr("RTA_TABLE") or m.get("table")
                if table is None or not is_dfagent_table(int(table)):
                    continue
                dst = m.get_attr("RTA_DST") or ("0.0.0.0" if fam == 4 else "::")
                gw = m.get_attr("RTA_GATEWAY")
                if gw is None:
                    via = m.get_attr("RTA_VIA")
                    gw = via.get("addr") if isinstance(via, dict) else ""
                oif = m.get_attr("RTA_OIF")
                out.append(
                    OwnedRoute(
                        fam,
                        int(table),
                        f"{dst}/{m['dst_len']}",
                        str(gw or ""),
                        self.ifname(int(oif)) if oif else "",
                    )
                )
        return out

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


class RouteEvents:
    """A raw rtnetlink socket subscribed to link, neighbour, route and nexthop changes.

    Messages are not parsed: any message is a hint to reconcile (events can be lost; the
    periodic reconcile is the safety net).
    """

    def __init__(self) -> None:
        s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        s.bind((0, RTMGRP_LINK | RTMGRP_NEIGH | RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_ROUTE))
        with contextlib.suppress(OSError):
            s.setsockopt(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, RTNLGRP_NEXTHOP)
        s.setblocking(False)
        self.sock = s

    def wait(self, timeout: float) -> bool:
        """True if something changed within ``timeout`` seconds (drains the socket)."""
        r, _, _ = select.select([self.sock], [], [], max(0.0, timeout))
        if not r:
            return False
        while True:
            try:
                self.sock.recv(1 << 16)
            except BlockingIOError:
                return True
            except OSError:  # ENOBUFS: we lost events; reconcile anyway
                return True

    def close(self) -> None:
        self.sock.close()
