"""nftables change notifications (what ``nft monitor`` listens to), as repair hints.

A firewall reload (``nft -f /etc/nftables.conf`` starting with ``flush ruleset``, which every
``systemctl reload nftables`` runs on Debian) deletes dfagent's table in the same transaction
as it installs the operator's rules. Subscribing to the NFNLGRP_NFTABLES multicast group lets
the agent see that within milliseconds instead of at the next periodic reconcile.

Only deletions that touch dfagent's table are hints (table, chain, rule, set, and elements of
its small maps); additions and the per-flow pin maps' element churn are ignored, so map mode's
own writes do not wake the checker. A lost message (ENOBUFS) is a hint too.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct

from dfagent.backends.linux.ruleset import TABLE

NETLINK_NETFILTER = 12
NFNLGRP_NFTABLES = 7
NFNL_SUBSYS_NFTABLES = 10
NFPROTO_INET = 1
# deletions: DELTABLE, DELCHAIN, DELRULE, DELSET, DELSETELEM (and DELOBJ, DELFLOWTABLE)
DEL_MSGS = frozenset({2, 5, 8, 11, 14, 20, 24})
NFT_MSG_DELSETELEM = 14
NFTA_TABLE = 1  # NFTA_{TABLE_NAME,CHAIN_TABLE,RULE_TABLE,SET_TABLE,SET_ELEM_LIST_TABLE}
NFTA_SET_ELEM_LIST_SET = 2
# per-flow maps whose element churn is dfagent's own (map mode's pins, the conntrack copy)
PIN_MAPS = frozenset({"pin4", "pin6", "copy4", "copy6"})
_NLH = struct.Struct("=IHHII")
_NFGEN = struct.Struct("=BBH")
_NLA = struct.Struct("=HH")


def _attrs(data: bytes, off: int, end: int) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    while off + _NLA.size <= end:
        alen, atype = _NLA.unpack_from(data, off)
        if alen < _NLA.size:
            break
        out[atype & 0x3FFF] = data[off + _NLA.size : off + alen]
        off += (alen + 3) & ~3
    return out


def _name(raw: bytes | None) -> str:
    return raw.split(b"\0", 1)[0].decode(errors="replace") if raw else ""


def touches_us(data: bytes, table: str = TABLE) -> bool:
    """Does this batch of netlink messages delete anything of dfagent's table?"""
    off = 0
    while off + _NLH.size <= len(data):
        length, mtype, _flags, _seq, _pid = _NLH.unpack_from(data, off)
        if length < _NLH.size:
            return False
        if mtype >> 8 == NFNL_SUBSYS_NFTABLES and mtype & 0xFF in DEL_MSGS:
            p = off + _NLH.size
            family = _NFGEN.unpack_from(data, p)[0] if p + _NFGEN.size <= len(data) else 0
            attrs = _attrs(data, p + _NFGEN.size, off + length)
            if family == NFPROTO_INET and _name(attrs.get(NFTA_TABLE)) == table:
                setname = _name(attrs.get(NFTA_SET_ELEM_LIST_SET))
                if not (mtype & 0xFF == NFT_MSG_DELSETELEM and setname in PIN_MAPS):
                    return True
        off += (length + 3) & ~3
    return False


class NftEvents:
    """A netfilter netlink socket in the nftables multicast group."""

    def __init__(self, table: str = TABLE) -> None:
        self.table = table
        s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        s.bind((0, 1 << (NFNLGRP_NFTABLES - 1)))
        s.setblocking(False)
        self.sock = s

    def fileno(self) -> int:
        return self.sock.fileno()

    def pending(self) -> bool:
        """Drain the socket; True if anything read deletes part of dfagent's table."""
        hit = False
        while True:
            try:
                data = self.sock.recv(1 << 20)
            except BlockingIOError:
                return hit
            except OSError:  # ENOBUFS: messages were lost; check anyway
                hit = True
                continue
            hit = hit or touches_us(data, self.table)

    def wait(self, timeout: float) -> bool:
        r, _, _ = select.select([self.sock], [], [], max(0.0, timeout))
        return bool(r) and self.pending()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
