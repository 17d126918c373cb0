"""Write a pin's mark bits straight into the conntrack entry of a just-pinned flow.

In map mode a pin becomes durable when a packet of the flow passes the pin map and its
``pin_<slot>`` chain copies the mark into the conntrack entry. A mirrored SYN reaches the agent
a few milliseconds after the real one, so a connection whose handshake and first request are
done by then carries no mark until its next packet: it is pinned only by the map element,
which times out (``pin_timeout``), and the per-next-hop counts (``drain --wait``) miss it.
Writing the mark into the entry when the pin is made closes that window.

One ctnetlink ``IPCTNL_MSG_CT_NEW`` (no ``NLM_F_CREATE``: update only) per flow, with
``CTA_MARK``/``CTA_MARK_MASK`` so only dfagent's bits change; a batch of them goes out in one
``sendmsg``. An entry that does not exist (yet, or any more) answers ENOENT and is skipped: the
packet path still marks it from the map.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import socket
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

NETLINK_NETFILTER = 12
NETLINK_CAP_ACK = 10  # acks of failed messages without a copy of the request
NFNL_SUBSYS_CTNETLINK = 1
IPCTNL_MSG_CT_NEW = 0
NLM_F_REQUEST, NLM_F_ACK = 0x1, 0x4
NLMSG_ERROR = 2
NLA_F_NESTED = 0x8000
CTA_TUPLE_ORIG, CTA_MARK, CTA_MARK_MASK = 1, 8, 21
CTA_TUPLE_IP, CTA_TUPLE_PROTO = 1, 2
CTA_IP_V4_SRC, CTA_IP_V4_DST, CTA_IP_V6_SRC, CTA_IP_V6_DST = 1, 2, 3, 4
CTA_PROTO_NUM, CTA_PROTO_SRC_PORT, CTA_PROTO_DST_PORT = 1, 2, 3
IPPROTO_TCP = 6
_NLH = struct.Struct("=IHHII")
_BATCH = 512  # messages per sendmsg: their acks (36 bytes each) fit the receive buffer


@dataclass
class MarkResult:
    updated: int = 0
    absent: int = 0  # no such entry (not yet, or no more): the packet path marks it
    failed: int = 0
    error: str = ""  # the last kernel error of a failed update


def _attr(kind: int, payload: bytes) -> bytes:
    head = struct.pack("=HH", 4 + len(payload), kind)
    return head + payload + b"\0" * (-len(payload) % 4)


def _nested(kind: int, *attrs: bytes) -> bytes:
    return _attr(kind | NLA_F_NESTED, b"".join(attrs))


def update_message(
    seq: int, src: str, dst: str, sport: int, dport: int, mark: int, mask: int
) -> bytes:
    """One ctnetlink update of a TCP flow's entry (by its original tuple): the bits of
    ``mask`` become ``mark``, the others stay."""
    a, b = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    if a.version != b.version:
        raise ValueError(f"{src} and {dst} are not of one family")
    v6 = a.version == 6
    s_kind, d_kind = (CTA_IP_V6_SRC, CTA_IP_V6_DST) if v6 else (CTA_IP_V4_SRC, CTA_IP_V4_DST)
    tup = _nested(
        CTA_TUPLE_ORIG,
        _nested(CTA_TUPLE_IP, _attr(s_kind, a.packed), _attr(d_kind, b.packed)),
        _nested(
            CTA_TUPLE_PROTO,
            _attr(CTA_PROTO_NUM, bytes([IPPROTO_TCP])),
            _attr(CTA_PROTO_SRC_PORT, struct.pack("!H", sport)),
            _attr(CTA_PROTO_DST_PORT, struct.pack("!H", dport)),
        ),
    )
    # the kernel computes (old & ~MASK) ^ MARK, so MARK must lie within MASK
    body = (
        struct.pack("=BBH", socket.AF_INET6 if v6 else socket.AF_INET, 0, 0)
        + tup
        + _attr(CTA_MARK, struct.pack("!I", mark & mask))
        + _attr(CTA_MARK_MASK, struct.pack("!I", mask))
    )
    mtype = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW
    return _NLH.pack(_NLH.size + len(body), mtype, NLM_F_REQUEST | NLM_F_ACK, seq, 0) + body


class CtMarker:
    """A ctnetlink socket that sets dfagent's mark bits on existing conntrack entries."""

    def __init__(self, mask: int) -> None:
        self.mask = mask
        self._seq = 0
        s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            s.setsockopt(270, NETLINK_CAP_ACK, 1)  # SOL_NETLINK
            s.bind((0, 0))
        except OSError:
            s.close()
            raise
        self.sock = s

    def mark(self, flows: Iterable[Sequence[object]]) -> MarkResult:
        """Set ``mark`` on each ``(src, dst, sport, dport, mark)`` flow's entry."""
        res = MarkResult()
        batch: list[bytes] = []
        for src, dst, sport, dport, mark in flows:
            self._seq = (self._seq + 1) & 0xFFFFFFFF
            batch.append(
                update_message(
                    self._seq, str(src), str(dst), int(str(sport)), int(str(dport)),
                    int(str(mark)), self.mask,
                )
            )  # fmt: skip
            if len(batch) == _BATCH:
                self._send(batch, res)
                batch = []
        if batch:
            self._send(batch, res)
        return res

    def _send(self, batch: list[bytes], res: MarkResult) -> None:
        self.sock.send(b"".join(batch))
        answered = 0
        while answered < len(batch):
            data = self.sock.recv(1 << 20)
            off = 0
            while off + _NLH.size <= len(data):
                length, mtype, _, _, _ = _NLH.unpack_from(data, off)
                if length < _NLH.size:
                    break
                if mtype == NLMSG_ERROR:
                    answered += 1
                    err = -struct.unpack_from("=i", data, off + _NLH.size)[0]
                    if err == 0:
                        res.updated += 1
                    elif err == errno.ENOENT:
                        res.absent += 1
                    else:
                        res.failed += 1
                        res.error = errno.errorcode.get(err, str(err))
                off += (length + 3) & ~3

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
