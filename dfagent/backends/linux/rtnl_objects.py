"""Raw rtnetlink for links, neighbours, rules and one-address route lookups.

The agent used pyroute2 for these few requests; importing pyroute2 (its package imports
IPDB, NDB and every netlink family) cost 0.2–0.6 s of each agent start, which is most of
what a restart may take. These are the same requests, packed and parsed with ``struct``
on the helpers of :mod:`dfagent.backends.linux.rtnl`.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from dfagent.backends.linux.rtnl import (
    _IFI,
    _NDM,
    _NLH,
    _RTM,
    _U32,
    AF,
    FAM,
    IFLA_IFNAME,
    NDA_DST,
    NLM_F_ACK,
    NLM_F_CREATE,
    NLM_F_DUMP,
    NLM_F_REQUEST,
    NLMSG_DONE,
    NLMSG_ERROR,
    RTM_DELRULE,
    RTM_NEWLINK,
    RTM_NEWRULE,
    _attr,
    _attrs,
    _messages,
    _socket,
    route_get,
)

RTM_GETLINK, RTM_GETNEIGH, RTM_GETRULE = 18, 30, 34
NLM_F_EXCL = 0x200
FRA_PRIORITY, FRA_FWMARK, FRA_TABLE, FRA_FWMASK, FRA_PROTOCOL = 6, 10, 15, 16, 21
FR_ACT_TO_TBL = 1
_FRH = _RTM  # struct fib_rule_hdr has the layout of struct rtmsg


@dataclass(frozen=True)
class Link:
    index: int
    name: str
    flags: int


@dataclass(frozen=True)
class Rule:
    family: int  # 4 or 6
    table: int
    priority: int | None
    fwmark: int | None
    fwmask: int | None
    protocol: int | None


def _error(data: bytes, off: int) -> int:
    return int(-struct.unpack_from("=i", data, off + _NLH.size)[0])


def _dump(mtype: int, body: bytes) -> Iterator[tuple[bytes, int, int]]:
    """(datagram, offset, length) of each answer of one dump request."""
    s = _socket()
    try:
        s.send(_NLH.pack(_NLH.size + len(body), mtype, NLM_F_REQUEST | NLM_F_DUMP, 1, 0) + body)
        while True:
            data = s.recv(1 << 20)
            for rtype, _seq, off, length in _messages(data):
                if rtype == NLMSG_DONE:
                    return
                if rtype == NLMSG_ERROR:
                    err = _error(data, off)
                    if err:
                        raise OSError(err, os.strerror(err))
                    return
                yield data, off, length
    finally:
        s.close()


def _get(mtype: int, body: bytes) -> tuple[bytes, int, int] | None:
    """The one answer to a get request; None when the kernel says there is none."""
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as s:
        s.settimeout(2.0)
        s.send(_NLH.pack(_NLH.size + len(body), mtype, NLM_F_REQUEST, 1, 0) + body)
        data = s.recv(1 << 16)
    for rtype, _seq, off, length in _messages(data):
        return None if rtype == NLMSG_ERROR else (data, off, length)
    return None


def _ack(mtype: int, flags: int, body: bytes) -> None:
    """Send one change and raise ``OSError`` with the kernel's errno if it refuses it."""
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as s:
        s.settimeout(2.0)
        msg_flags = NLM_F_REQUEST | NLM_F_ACK | flags
        s.send(_NLH.pack(_NLH.size + len(body), mtype, msg_flags, 1, 0) + body)
        data = s.recv(1 << 16)
    for rtype, _seq, off, _length in _messages(data):
        if rtype == NLMSG_ERROR:
            err = _error(data, off)
            if err:
                raise OSError(err, os.strerror(err))
            return


# ── links ───────────────────────────────────────────────────────────────────────────
def _link(data: bytes, off: int, length: int) -> Link | None:
    p = off + _NLH.size
    _fam, _type, index, flags, _change = _IFI.unpack_from(data, p)
    for atype, s, e in _attrs(data, p + _IFI.size, off + length):
        if atype == IFLA_IFNAME:
            return Link(index, data[s:e].split(b"\0", 1)[0].decode(), flags)
    return None


def dump_links() -> list[Link]:
    out = []
    for data, off, length in _dump(RTM_GETLINK, _IFI.pack(0, 0, 0, 0, 0)):
        if _NLH.unpack_from(data, off)[1] == RTM_NEWLINK:
            link = _link(data, off, length)
            if link is not None:
                out.append(link)
    return out


def get_link(index: int = 0, name: str = "") -> Link | None:
    """One link by index or by name (None: no such link)."""
    body = _IFI.pack(0, 0, index, 0, 0)
    if name:
        body += _attr(IFLA_IFNAME, name.encode() + b"\0")
    got = _get(RTM_GETLINK, body)
    return _link(*got) if got is not None else None


# ── neighbours ──────────────────────────────────────────────────────────────────────
def neighbour_states() -> dict[tuple[int, str], int]:
    """(ifindex, address) → NUD state of every neighbour entry (v4 and v6)."""
    out: dict[tuple[int, str], int] = {}
    for data, off, length in _dump(RTM_GETNEIGH, _NDM.pack(0, 0, 0, 0, 0)):
        p = off + _NLH.size
        fam, ifindex, state, _flags, _type = _NDM.unpack_from(data, p)
        if fam not in FAM:
            continue
        for atype, s, e in _attrs(data, p + _NDM.size, off + length):
            if atype == NDA_DST and e - s in (4, 16):
                out[(ifindex, socket.inet_ntop(fam, data[s:e]))] = state
    return out


# ── rules ───────────────────────────────────────────────────────────────────────────
def dump_rules(family: int) -> list[Rule]:
    out = []
    for data, off, length in _dump(RTM_GETRULE, _FRH.pack(AF[family], 0, 0, 0, 0, 0, 0, 0, 0)):
        p = off + _NLH.size
        table = _FRH.unpack_from(data, p)[4]
        got: dict[int, int] = {}
        for atype, s, e in _attrs(data, p + _FRH.size, off + length):
            if atype == FRA_PROTOCOL and e > s:
                got[atype] = data[s]
            elif atype in (FRA_PRIORITY, FRA_FWMARK, FRA_TABLE, FRA_FWMASK) and e - s == 4:
                got[atype] = _U32.unpack_from(data, s)[0]
        out.append(
            Rule(family, got.get(FRA_TABLE, table), got.get(FRA_PRIORITY), got.get(FRA_FWMARK),
                 got.get(FRA_FWMASK), got.get(FRA_PROTOCOL))
        )  # fmt: skip
    return out


def _rule_body(
    family: int, table: int, priority: int | None, mark: int | None, mask: int | None,
    protocol: int | None,
) -> bytes:  # fmt: skip
    body = _FRH.pack(AF[family], 0, 0, 0, table if table < 256 else 0, 0, 0, FR_ACT_TO_TBL, 0)
    body += _attr(FRA_TABLE, _U32.pack(table))
    if priority is not None:
        body += _attr(FRA_PRIORITY, _U32.pack(priority))
    if mark is not None:
        body += _attr(FRA_FWMARK, _U32.pack(mark))
    if mask is not None:
        body += _attr(FRA_FWMASK, _U32.pack(mask))
    if protocol is not None:
        body += _attr(FRA_PROTOCOL, bytes([protocol]))
    return body


def add_rule(family: int, priority: int, mark: int, mask: int, table: int, protocol: int) -> None:
    """``ip rule add priority P fwmark MARK/MASK lookup TABLE protocol PROTO``."""
    body = _rule_body(family, table, priority, mark, mask, protocol)
    _ack(RTM_NEWRULE, NLM_F_CREATE | NLM_F_EXCL, body)


def del_rule(
    family: int, table: int, priority: int | None, mark: int | None, mask: int | None
) -> bool:
    """Remove the first rule matching the fields given; False if there was none."""
    try:
        _ack(RTM_DELRULE, 0, _rule_body(family, table, priority, mark, mask, None))
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ESRCH):
            return False
        raise
    return True


# ── one lookup ──────────────────────────────────────────────────────────────────────
def route_oif(addr: str) -> int | None:
    """The output interface index of ``ip route get ADDR`` (None: no route)."""
    got = route_get(addr)
    return None if got is None else got[0]
