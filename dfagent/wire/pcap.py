"""Capture files → outer IP packets, for `dfagent decode`. Pure: give it the file's bytes
(or an mmap of them).

Formats: classic pcap (µs or ns timestamps, either byte order) and pcapng (section header,
interface description, enhanced and simple packet blocks; other blocks are skipped).
Link types: Ethernet (with VLAN tags), raw IP (101, 12 and 14 as written by BSDs, 228 IPv4,
229 IPv6), Linux cooked capture v1 (113) and v2 (276). A classic pcap of another link type is
a CaptureError; in a pcapng, packets of interfaces with another link type are yielded (the
caller counts them) and only a file where no interface has a supported link type is an error.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator
from struct import Struct
from typing import NamedTuple

from dfagent.wire.errors import SKIP_NOT_IP, DecodeError, Skip
from dfagent.wire.ether import ETHERTYPE_IPV4, ETHERTYPE_IPV6, parse_ether

LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_RAW_BSD = (12, 14)
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL = 113
LINKTYPE_LINUX_SLL2 = 276
SUPPORTED_LINKTYPES = frozenset(
    (LINKTYPE_ETHERNET, LINKTYPE_RAW, *LINKTYPE_RAW_BSD, LINKTYPE_IPV4, LINKTYPE_IPV6,
     LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2)
)  # fmt: skip
_RAW_LINKTYPES = frozenset((LINKTYPE_RAW, *LINKTYPE_RAW_BSD, LINKTYPE_IPV4, LINKTYPE_IPV6))
# names of link types people are likely to capture by mistake, for messages
_LINKTYPE_NAMES = {
    0: "BSD loopback",
    9: "PPP",
    104: "Cisco HDLC",
    105: "IEEE 802.11",
    108: "OpenBSD loopback",
    119: "802.11 Prism",
    127: "802.11 radiotap",
    192: "802.11 PPI",
    220: "Linux USB",
    **{147 + i: f"USER{i}" for i in range(16)},
}

_MAGIC = {
    b"\xa1\xb2\xc3\xd4": ">",
    b"\xd4\xc3\xb2\xa1": "<",
    b"\xa1\xb2\x3c\x4d": ">",
    b"\x4d\x3c\xb2\xa1": "<",
}
PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
_U16BE = Struct("!H")


class CaptureError(Exception):
    """The buffer is not a capture file we can read (bad magic, unknown link type...)."""


# a whole capture file: its bytes, or the file memory-mapped (records are copied out)
Capture = bytes | mmap.mmap


class Frame(NamedTuple):
    """One captured packet. `interface` is the pcapng interface id within its `section` (the
    pcapng section number, from 0); both are 0 in a classic pcap."""

    linktype: int
    data: bytes
    interface: int = 0
    section: int = 0


def describe_linktype(linktype: int) -> str:
    """`link type 105 (IEEE 802.11)`, or `link type 999` for a type we have no name for."""
    name = _LINKTYPE_NAMES.get(linktype)
    return f"link type {linktype}" + (f" ({name})" if name else "")


def is_capture(head: bytes) -> bool:
    return head[:4] in _MAGIC or head[:4] == PCAPNG_MAGIC


def iter_capture(buf: Capture) -> Iterator[Frame]:
    """Yield a Frame for every packet, in file order. Raises CaptureError when the file itself
    is unreadable; a truncated last record ends the iteration with a CaptureError too.

    Frames of a pcapng interface whose link type is not in SUPPORTED_LINKTYPES are yielded
    as well: the caller skips (and counts) them. When no interface of the file has a
    supported link type, the iteration ends with a CaptureError after the last frame."""
    head = bytes(buf[:4])
    if head == PCAPNG_MAGIC:
        yield from _iter_pcapng(buf)
    elif head in _MAGIC:
        yield from _iter_pcap(buf, _MAGIC[head])
    else:
        raise CaptureError("not a pcap or pcapng file (bad magic)")


def _iter_pcap(buf: Capture, order: str) -> Iterator[Frame]:
    if len(buf) < 24:
        raise CaptureError("truncated pcap file header")
    linktype = Struct(order + "I").unpack_from(buf, 20)[0] & 0x0FFFFFFF
    if linktype not in SUPPORTED_LINKTYPES:
        raise CaptureError(f"pcap {describe_linktype(linktype)} not supported")
    rec = Struct(order + "IIII")
    off = 24
    end = len(buf)
    while off < end:
        if end - off < 16:
            raise CaptureError(f"truncated record header at byte {off}")
        _s, _us, incl, _orig = rec.unpack_from(buf, off)
        off += 16
        if incl > end - off:
            raise CaptureError(f"truncated record at byte {off - 16}")
        yield Frame(linktype, bytes(buf[off : off + incl]))
        off += incl


def _iter_pcapng(buf: Capture) -> Iterator[Frame]:
    off = 0
    end = len(buf)
    order = "<"
    links: list[int] = []
    section = -1
    declared: list[tuple[int, int, int]] = []  # (section, interface, link type)
    supported = False
    while off < end:
        if end - off < 12:
            raise CaptureError(f"truncated block at byte {off}")
        if bytes(buf[off : off + 4]) == PCAPNG_MAGIC:
            bom = bytes(buf[off + 8 : off + 12])
            if bom == b"\x4d\x3c\x2b\x1a":
                order = "<"
            elif bom == b"\x1a\x2b\x3c\x4d":
                order = ">"
            else:
                raise CaptureError("bad pcapng byte-order magic")
            links = []
            section += 1
        btype, blen = Struct(order + "II").unpack_from(buf, off)
        if blen < 12 or blen % 4 or blen > end - off:
            raise CaptureError(f"bad pcapng block length {blen} at byte {off}")
        body = off + 8
        if btype == 1:  # interface description
            linktype = Struct(order + "H").unpack_from(buf, body)[0]
            declared.append((section, len(links), linktype))
            supported = supported or linktype in SUPPORTED_LINKTYPES
            links.append(linktype)
        elif btype == 6:  # enhanced packet
            if blen < 32:
                raise CaptureError(f"short enhanced packet block at byte {off}")
            iface, _th, _tl, cap, _ln = Struct(order + "IIIII").unpack_from(buf, body)
            if iface >= len(links) or cap > blen - 32:
                raise CaptureError(f"bad enhanced packet block at byte {off}")
            yield Frame(links[iface], bytes(buf[body + 20 : body + 20 + cap]), iface, section)
        elif btype == 3:  # simple packet
            if not links:
                raise CaptureError(f"simple packet block before any interface at byte {off}")
            (orig,) = Struct(order + "I").unpack_from(buf, body)
            cap = min(orig, blen - 16)
            yield Frame(links[0], bytes(buf[body + 4 : body + 4 + cap]), 0, section)
        off += blen
    if declared and not supported:
        several = declared[-1][0] > 0
        raise CaptureError(
            "no interface with a supported link type: "
            + ", ".join(
                f"interface {i}" + (f" of section {sec}" if several else "")
                + f" has {describe_linktype(lt)}"
                for sec, i, lt in declared
            )
        )  # fmt: skip


def strip_link(linktype: int, frame: bytes) -> bytes | Skip:
    """The IP packet inside a captured frame, or SKIP_NOT_IP. Raises DecodeError("link", ...)
    for a frame too short for its link header, ValueError for a link type not in
    SUPPORTED_LINKTYPES (the caller must skip those frames)."""
    if linktype == LINKTYPE_ETHERNET:
        etype, _vlans, p = parse_ether(frame, 0, len(frame))
    elif linktype == LINKTYPE_LINUX_SLL:
        if len(frame) < 16:
            raise DecodeError("link", 0, "truncated Linux cooked header")
        etype, p = _U16BE.unpack_from(frame, 14)[0], 16
    elif linktype == LINKTYPE_LINUX_SLL2:
        if len(frame) < 20:
            raise DecodeError("link", 0, "truncated Linux cooked v2 header")
        etype, p = _U16BE.unpack_from(frame, 0)[0], 20
    elif linktype in _RAW_LINKTYPES:
        return frame
    else:
        raise ValueError(f"{describe_linktype(linktype)} not supported")
    if etype not in (ETHERTYPE_IPV4, ETHERTYPE_IPV6):
        return SKIP_NOT_IP
    return frame[p:]
