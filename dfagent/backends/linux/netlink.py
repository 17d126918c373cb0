"""Routing-table side of the Linux backend (pyroute2): ECMP sets, liveness, rules, tables.

Everything here works in the network namespace the process runs in.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import select
import socket
import struct
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
    mask: int = 0xFFFFFFFF


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
    def ecmp_set(self, vip: IPNetwork) -> set[NextHop]:
        """The next hops of the route the kernel would use for ``vip`` (``get fibmatch``).

        A default-route VIP (the egress case: pin every connection a host makes) cannot be
        looked up by its own address (0.0.0.0 is "this host"), so an address that only the
        default route covers is asked for, and the answer must be the default itself."""
        fam = vip.version
        probe = DEFAULT_PROBE[fam] if vip.prefixlen == 0 else str(vip.network_address)
        try:
            msgs = self.ipr.route("get", family=AF[fam], dst=probe, flags=RTM_F_FIB_MATCH)
        except Exception:  # no route (ENETUNREACH) and the like
            return set()
        if vip.prefixlen == 0:
            msgs = [m for m in msgs if m.get("dst_len", 0) == 0]
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
        a full BGP table is not dumped to read a handful of routes (pyroute2 filters in
        Python: ~1 s per 10 k routes)."""
        want = set(tables) if tables is not None else None
        out = []
        for fam in (4, 6):
            for table, dst, dst_len, gw, oif in dump_routes_by_protocol(AF[fam], RT_PROTO):
                if not is_dfagent_table(table) or (want is not None and table not in want):
                    continue
                if dst is None:
                    dst = "0.0.0.0" if fam == 4 else "::"
                out.append(
                    OwnedRoute(
                        fam,
                        table,
                        f"{dst}/{dst_len}",
                        gw or "",
                        self.ifname(oif) if oif else "",
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

    def fileno(self) -> int:
        return self.sock.fileno()

    def pending(self) -> bool:
        """Drain the socket; True if anything was there (or messages were lost)."""
        return self.wait(0)

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


# ── a kernel-filtered route dump (raw rtnetlink) ────────────────────────────────────
NETLINK_GET_STRICT_CHK = 12
RTM_GETROUTE = 26
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300
NLMSG_ERROR = 2
NLMSG_DONE = 3
# Addresses nobody routes more specifically than a default route: the end of the reserved
# 240/4 block, and the end of the IPv6 documentation block 3fff::/20 (RFC 9637).
DEFAULT_PROBE = {4: "255.255.255.254", 6: "3fff:fff:ffff:ffff:ffff:ffff:ffff:fffe"}
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_TABLE, RTA_VIA = 1, 4, 5, 15, 18
_NLH = struct.Struct("=IHHII")
_RTM = struct.Struct("=BBBBBBBBI")
_RTA = struct.Struct("=HH")


def dump_routes_by_protocol(
    family: int, protocol: int
) -> list[tuple[int, str | None, int, str | None, int | None]]:
    """(table, dst, dst_len, gateway, oif) of every route with this protocol, all tables."""
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
    try:
        s.setsockopt(SOL_NETLINK, NETLINK_GET_STRICT_CHK, 1)
        s.bind((0, 0))
        body = _RTM.pack(family, 0, 0, 0, 0, protocol, 0, 0, 0)
        s.send(
            _NLH.pack(_NLH.size + len(body), RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP, 1, 0) + body
        )
        out: list[tuple[int, str | None, int, str | None, int | None]] = []
        while True:
            data = s.recv(1 << 20)
            off = 0
            while off + _NLH.size <= len(data):
                length, mtype, _flags, _seq, _pid = _NLH.unpack_from(data, off)
                if length < _NLH.size:
                    return out
                if mtype == NLMSG_DONE:
                    return out
                if mtype == NLMSG_ERROR:
                    err = -struct.unpack_from("=i", data, off + _NLH.size)[0]
                    if err:
                        raise OSError(err, os.strerror(err))
                    return out
                p = off + _NLH.size
                fam, dst_len, _sl, _tos, table, proto, _sc, _ty, _fl = _RTM.unpack_from(data, p)
                dst = gw = None
                oif = None
                a = p + _RTM.size
                end = off + length
                while a + _RTA.size <= end:
                    alen, atype = _RTA.unpack_from(data, a)
                    if alen < _RTA.size:
                        break
                    val = data[a + _RTA.size : a + alen]
                    if atype == RTA_DST:
                        dst = socket.inet_ntop(fam, val)
                    elif atype == RTA_GATEWAY:
                        gw = socket.inet_ntop(fam, val)
                    elif atype == RTA_VIA and len(val) >= 2:
                        vfam = struct.unpack_from("=H", val)[0]
                        gw = socket.inet_ntop(vfam, val[2:])
                    elif atype == RTA_OIF:
                        oif = struct.unpack_from("=i", val)[0]
                    elif atype == RTA_TABLE:
                        table = struct.unpack_from("=I", val)[0]
                    a += (alen + 3) & ~3
                if proto == protocol:  # belt and braces if the kernel ignored the filter
                    out.append((table, dst, dst_len, gw, oif))
                off += (length + 3) & ~3
    finally:
        s.close()
