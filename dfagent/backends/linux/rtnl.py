"""Raw rtnetlink without pyroute2, for the paths that scale with the number of routes.

pyroute2 parses every attribute of every message into objects (about 1 s per 10 k routes) and
waits for an acknowledgement per request (about 0.35 ms per route: 12 s for 32,000 table
routes). Here:

* :func:`dump_routes` — one route dump filtered *in the kernel* (strict checking: by table,
  protocol, type), parsed with ``struct`` into :class:`Route`;
* :class:`RtnlEvents` — the multicast groups the agent watches, each message parsed into an
  :class:`Event` (routes, links, neighbours; nexthop objects and rules as bare notices);
* :func:`apply_routes` — route replaces and deletes sent in batches of many messages per
  ``send``, with one acknowledgement each read back afterwards (errors per route).
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import socket
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

SOL_NETLINK = 270
NETLINK_ADD_MEMBERSHIP = 1
NETLINK_GET_STRICT_CHK = 12
NLM_F_REQUEST, NLM_F_ACK, NLM_F_DUMP = 0x1, 0x4, 0x300
NLM_F_REPLACE, NLM_F_CREATE = 0x100, 0x400
NLMSG_ERROR, NLMSG_DONE, NLMSG_OVERRUN = 2, 3, 4
RTM_NEWLINK, RTM_DELLINK = 16, 17
RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26
RTM_NEWNEIGH, RTM_DELNEIGH = 28, 29
RTM_NEWRULE, RTM_DELRULE = 32, 33
RTM_NEWNEXTHOP, RTM_DELNEXTHOP = 104, 105
RTA_DST, RTA_SRC, RTA_IIF, RTA_OIF, RTA_GATEWAY, RTA_PRIORITY = 1, 2, 3, 4, 5, 6
RTA_IP_PROTO, RTA_SPORT, RTA_DPORT = 27, 28, 29
RTA_MULTIPATH, RTA_TABLE, RTA_VIA, RTA_NH_ID = 9, 15, 18, 30
IFLA_IFNAME = 3
NDA_DST = 1
RTNH_F_DEAD = 1
RTN_UNICAST = 1
RT_TABLE_MAIN = 254
RT_SCOPE_UNIVERSE = 0

# multicast groups: legacy bitmask for the first 32, ADD_MEMBERSHIP for the rest
RTMGRP_LINK, RTMGRP_NEIGH, RTMGRP_IPV4_ROUTE, RTMGRP_IPV4_RULE = 0x1, 0x4, 0x40, 0x80
RTMGRP_IPV6_ROUTE = 0x400
RTNLGRP_IPV6_RULE, RTNLGRP_NEXTHOP = 19, 32

_NLH = struct.Struct("=IHHII")
_RTM = struct.Struct("=BBBBBBBBI")
_RTA = struct.Struct("=HH")
_RTNH = struct.Struct("=HBBi")
_IFI = struct.Struct("=BxHiII")
_NDM = struct.Struct("=BxxxiHBB")
_U32 = struct.Struct("=I")
AF = {4: socket.AF_INET, 6: socket.AF_INET6}
FAM = {socket.AF_INET: 4, socket.AF_INET6: 6}
ALEN = {4: 4, 6: 16}


@dataclass(frozen=True)
class Hop:
    gateway: str | None
    oif: int | None
    flags: int = 0


@dataclass(frozen=True)
class Route:
    family: int  # 4 or 6
    table: int
    dst: bytes  # packed network address (zeros for a default route)
    dst_len: int
    protocol: int
    type: int
    priority: int
    hops: tuple[Hop, ...]
    nh_id: int | None = None

    @property
    def prefix(self) -> str:
        return f"{socket.inet_ntop(AF[self.family], self.dst)}/{self.dst_len}"


@dataclass
class Event:
    """One rtnetlink notification. ``kind``: route, link, neigh, nexthop, rule."""

    kind: str
    deleted: bool
    route: Route | None = None
    ifindex: int = 0
    ifname: str = ""
    flags: int = 0  # link flags, or neighbour NUD state
    address: str = ""  # neighbour address
    extra: dict[str, int] = field(default_factory=dict)


def _attrs(data: bytes, start: int, end: int) -> Iterator[tuple[int, int, int]]:
    """(type, value start, value end) of each attribute in data[start:end]."""
    a = start
    while a + 4 <= end:
        alen, atype = _RTA.unpack_from(data, a)
        if alen < 4:
            return
        yield atype & 0x3FFF, a + 4, a + alen
        a += (alen + 3) & ~3


def _gateway(data: bytes, atype: int, s: int, e: int, fam: int) -> str | None:
    if atype == RTA_GATEWAY:
        return socket.inet_ntop(AF[fam], data[s:e])
    if e - s >= 2:  # RTA_VIA: family, then the address (IPv4 routes via IPv6 gateways)
        vfam = struct.unpack_from("=H", data, s)[0]
        return socket.inet_ntop(vfam, data[s + 2 : e])
    return None


def parse_route(data: bytes, off: int, length: int) -> Route | None:
    """A route message (RTM_NEWROUTE/RTM_DELROUTE) at ``off``; None for other families."""
    p = off + _NLH.size
    af, dst_len, _sl, _tos, table, proto, _scope, rtype, _fl = _RTM.unpack_from(data, p)
    fam = FAM.get(af)
    if fam is None:
        return None
    dst = bytes(ALEN[fam])
    gw: str | None = None
    oif: int | None = None
    prio = 0
    nh_id: int | None = None
    hops: list[Hop] = []
    for atype, s, e in _attrs(data, p + _RTM.size, off + length):
        if atype == RTA_DST:
            dst = data[s:e]
        elif atype in (RTA_GATEWAY, RTA_VIA):
            gw = _gateway(data, atype, s, e, fam)
        elif atype == RTA_OIF:
            oif = _U32.unpack_from(data, s)[0]
        elif atype == RTA_PRIORITY:
            prio = _U32.unpack_from(data, s)[0]
        elif atype == RTA_TABLE:
            table = _U32.unpack_from(data, s)[0]
        elif atype == RTA_NH_ID:
            nh_id = _U32.unpack_from(data, s)[0]
        elif atype == RTA_MULTIPATH:
            h = s
            while h + _RTNH.size <= e:
                rlen, hflags, _hops, hoif = _RTNH.unpack_from(data, h)
                if rlen < _RTNH.size:
                    break
                hgw = None
                for t2, s2, e2 in _attrs(data, h + _RTNH.size, h + rlen):
                    if t2 in (RTA_GATEWAY, RTA_VIA):
                        hgw = _gateway(data, t2, s2, e2, fam)
                hops.append(Hop(hgw, hoif, hflags))
                h += (rlen + 3) & ~3
    if not hops and (gw is not None or oif is not None):
        hops.append(Hop(gw, oif, 0))
    return Route(fam, table, dst, dst_len, proto, rtype, prio, tuple(hops), nh_id)


def _socket(groups: int = 0) -> socket.socket:
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        s.bind((0, groups))
    except BaseException:
        s.close()
        raise
    return s


def _messages(data: bytes) -> Iterator[tuple[int, int, int, int]]:
    """(type, seq, offset, length) of each message in one datagram."""
    off = 0
    while off + _NLH.size <= len(data):
        length, mtype, _flags, seq, _pid = _NLH.unpack_from(data, off)
        if length < _NLH.size:
            return
        yield mtype, seq, off, length
        off += (length + 3) & ~3


def dump_routes(family: int, table: int = 0, protocol: int = 0, rtype: int = 0) -> list[Route]:
    """Every route of ``family`` (4/6) matching the filters (0: any), filtered by the
    kernel: a full BGP table is never copied to read one table or one protocol."""
    s = _socket()
    try:
        s.setsockopt(SOL_NETLINK, NETLINK_GET_STRICT_CHK, 1)
        body = _RTM.pack(AF[family], 0, 0, 0, table if table < 256 else 0, protocol, 0, rtype, 0)
        if table >= 256:
            body += _RTA.pack(8, RTA_TABLE) + _U32.pack(table)
        s.send(_NLH.pack(_NLH.size + len(body), RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP, 1, 0)
               + body)  # fmt: skip
        out: list[Route] = []
        while True:
            data = s.recv(1 << 20)
            for mtype, _seq, off, length in _messages(data):
                if mtype == NLMSG_DONE:
                    return out
                if mtype == NLMSG_ERROR:
                    err = -struct.unpack_from("=i", data, off + _NLH.size)[0]
                    if err:
                        raise OSError(err, os.strerror(err))
                    return out
                r = parse_route(data, off, length)
                # belt and braces if a kernel ignored a filter
                if (
                    r is None
                    or (table and r.table != table)
                    or (protocol and r.protocol != protocol)
                ):
                    continue  # fmt: skip
                if rtype and r.type != rtype:
                    continue
                out.append(r)
    finally:
        s.close()


class RtnlEvents:
    """The rtnetlink groups the agent watches: links, neighbours, IPv4/IPv6 routes and rules,
    nexthop objects. :meth:`read` returns what arrived, parsed; ``overflow`` says messages
    were lost (ENOBUFS) and everything must be read again."""

    def __init__(self) -> None:
        groups = RTMGRP_LINK | RTMGRP_NEIGH | RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_ROUTE
        self.sock = _socket(groups | RTMGRP_IPV4_RULE)
        for g in (RTNLGRP_NEXTHOP, RTNLGRP_IPV6_RULE):
            with contextlib.suppress(OSError):
                self.sock.setsockopt(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, g)
        self.sock.setblocking(False)
        self.overflow = False

    def fileno(self) -> int:
        return self.sock.fileno()

    def read(self) -> list[Event]:
        out: list[Event] = []
        while True:
            try:
                data = self.sock.recv(1 << 20)
            except BlockingIOError:
                return out
            except OSError as exc:
                if exc.errno != errno.ENOBUFS:
                    raise
                self.overflow = True  # lost events: the caller re-reads the kernel
                continue
            for mtype, _seq, off, length in _messages(data):
                ev = _event(data, mtype, off, length)
                if ev is not None:
                    out.append(ev)

    def close(self) -> None:
        self.sock.close()


def _event(data: bytes, mtype: int, off: int, length: int) -> Event | None:
    if mtype in (RTM_NEWROUTE, RTM_DELROUTE):
        r = parse_route(data, off, length)
        return Event("route", mtype == RTM_DELROUTE, route=r) if r is not None else None
    p = off + _NLH.size
    if mtype in (RTM_NEWLINK, RTM_DELLINK):
        _fam, _type, index, flags, _change = _IFI.unpack_from(data, p)
        name = ""
        for atype, s, e in _attrs(data, p + _IFI.size, off + length):
            if atype == IFLA_IFNAME:
                name = data[s:e].split(b"\0", 1)[0].decode(errors="replace")
        return Event("link", mtype == RTM_DELLINK, ifindex=index, ifname=name, flags=flags)
    if mtype in (RTM_NEWNEIGH, RTM_DELNEIGH):
        af, index, state, _fl, _typ = _NDM.unpack_from(data, p)
        fam = FAM.get(af)
        if fam is None:
            return None
        for atype, s, e in _attrs(data, p + _NDM.size, off + length):
            if atype == NDA_DST and e - s == ALEN[fam]:
                addr = socket.inet_ntop(af, data[s:e])
                return Event("neigh", mtype == RTM_DELNEIGH, ifindex=index, flags=state,
                             address=addr)  # fmt: skip
        return None
    if mtype in (RTM_NEWNEXTHOP, RTM_DELNEXTHOP):
        return Event("nexthop", mtype == RTM_DELNEXTHOP)
    if mtype in (RTM_NEWRULE, RTM_DELRULE):
        return Event("rule", mtype == RTM_DELRULE)
    return None


# ── batched writes ─────────────────────────────────────────────────────────────────
@dataclass(frozen=True)
class RouteOp:
    """Replace (or with ``delete``, remove) ``dst`` in ``table`` via ``gateway`` on ``oif``."""

    family: int
    table: int
    dst: str  # prefix text
    gateway: str = ""
    oif: int = 0
    via_v6: bool = False  # an IPv4 route via an IPv6 gateway (RTA_VIA)
    delete: bool = False
    protocol: int = 0


def _route_msg(op: RouteOp, seq: int) -> bytes:
    addr, _, plen = op.dst.partition("/")
    dst = socket.inet_pton(AF[op.family], addr)
    mtype = RTM_DELROUTE if op.delete else RTM_NEWROUTE
    flags = NLM_F_REQUEST | NLM_F_ACK
    if not op.delete:
        flags |= NLM_F_REPLACE | NLM_F_CREATE
    rtype = 0 if op.delete else RTN_UNICAST
    body = _RTM.pack(AF[op.family], int(plen), 0, 0, op.table if op.table < 256 else 0,
                     op.protocol, RT_SCOPE_UNIVERSE, rtype, 0)  # fmt: skip
    body += _attr(RTA_DST, dst) + _attr(RTA_TABLE, _U32.pack(op.table))
    if not op.delete:
        body += _attr(RTA_OIF, _U32.pack(op.oif))
        if op.via_v6:
            body += _attr(RTA_VIA, struct.pack("=H", socket.AF_INET6)
                          + socket.inet_pton(socket.AF_INET6, op.gateway))  # fmt: skip
        else:
            body += _attr(RTA_GATEWAY, socket.inet_pton(AF[op.family], op.gateway))
    return _NLH.pack(_NLH.size + len(body), mtype, flags, seq, 0) + body


def _attr(atype: int, value: bytes) -> bytes:
    raw = _RTA.pack(4 + len(value), atype) + value
    return raw + b"\0" * (-len(raw) % 4)


def route_get_oif(src: str, dst: str, iif: int, proto: int, sport: int, dport: int) -> int | None:
    """The output interface index the kernel picks for a packet of this 5-tuple arriving on
    ``iif`` (RTM_GETROUTE as `ip route get DST from SRC iif I ipproto P sport p dport q`);
    None when it has no route (or refuses the question)."""
    got = route_get(dst, src, iif, proto, sport, dport)
    return None if got is None else got[0]


def route_get(
    dst: str,
    src: str | None = None,
    iif: int = 0,
    proto: int = 0,
    sport: int = 0,
    dport: int = 0,
) -> tuple[int, str | None] | None:
    """(output interface index, gateway or None) the kernel picks for a packet to ``dst``:
    arriving on ``iif`` from ``src`` with this protocol and ports (0: not given), or sent by
    this host when ``iif`` is 0. None when it has no route (or refuses the question)."""
    d_ip = ipaddress.ip_address(dst)
    bits = 32 if d_ip.version == 4 else 128
    body = _RTM.pack(AF[d_ip.version], bits, bits if src else 0, 0, 0, 0, 0, 0, 0)
    body += _attr(RTA_DST, d_ip.packed)
    if src:
        body += _attr(RTA_SRC, ipaddress.ip_address(src).packed)
    if iif:
        body += _attr(RTA_IIF, _U32.pack(iif))
    if proto:
        body += _attr(RTA_IP_PROTO, bytes([proto]))
    if sport or dport:
        body += _attr(RTA_SPORT, struct.pack("!H", sport))
        body += _attr(RTA_DPORT, struct.pack("!H", dport))
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as sock:
        sock.settimeout(2.0)
        sock.send(_NLH.pack(_NLH.size + len(body), RTM_GETROUTE, NLM_F_REQUEST, 1, 0) + body)
        data = sock.recv(65536)
    for mtype, _seq, off, length in _messages(data):
        if mtype != RTM_NEWROUTE:  # NLMSG_ERROR: no route (or a refused question)
            return None
        oif, gateway = None, None
        for atype, s, e in _attrs(data, off + _NLH.size + _RTM.size, off + length):
            if atype == RTA_OIF:
                oif = int(_U32.unpack_from(data, s)[0])
            elif atype in (RTA_GATEWAY, RTA_VIA):
                gateway = _gateway(data, atype, s, e, d_ip.version)
        return None if oif is None else (oif, gateway)
    return None


def apply_routes(ops: Sequence[RouteOp], batch: int = 256) -> list[tuple[RouteOp, int]]:
    """Send every op, ``batch`` messages per write; returns (op, errno) of those that failed
    (deleting a route that is not there is no failure)."""
    failed: list[tuple[RouteOp, int]] = []
    s = _socket()
    try:
        for start in range(0, len(ops), batch):
            chunk = ops[start : start + batch]
            s.send(b"".join(_route_msg(op, start + i + 1) for i, op in enumerate(chunk)))
            pending = len(chunk)
            while pending:
                data = s.recv(1 << 20)
                for mtype, seq, off, _length in _messages(data):
                    if mtype != NLMSG_ERROR:
                        continue
                    pending -= 1
                    err = -struct.unpack_from("=i", data, off + _NLH.size)[0]
                    op = ops[seq - 1]
                    if err and not (op.delete and err in (errno.ESRCH, errno.ENOENT)):
                        failed.append((op, err))
    finally:
        s.close()
    return failed


class RouteNetlink(Protocol):
    """What route observation reads of the kernel (``netlink.Netlink``; the
    unit tests' fakes)."""

    def refresh_names(self) -> None: ...
    def neighbour_states(self) -> dict[tuple[int, str], int]: ...
    def main_routes(self, family: int) -> list[Route]: ...
    def ifname(self, index: int) -> str: ...
    def ifindex(self, name: str) -> int | None: ...
    def link_up(self, ifname: str) -> bool: ...
    def note_link(self, index: int, name: str, flags: int, deleted: bool) -> None: ...
