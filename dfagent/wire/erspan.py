"""ERSPAN headers (draft-foschiano-erspan) and what follows GRE protocol 0x88BE.

Type I   GRE 0x88BE, no S bit, no ERSPAN header: the mirrored Ethernet frame follows
         (Arista Trident/XGS).
Type II  GRE 0x88BE with the S bit, then 8 bytes:
             ver(4)=1 vlan(12) | cos(3) en(2) t(1) session(10) | reserved(12) index(20)
Type III GRE 0x22EB, then 12 bytes:
             ver(4)=2 vlan(12) | cos(3) bso(2) t(1) session(10) | timestamp(32) |
             sgt(16) | p(1) ft(5) hw(6) d(1) gra(2) o(1)
         plus an 8-byte platform-specific sub-header when O=1. ft=0 is Ethernet, ft=2 is IP.

Some platforms (an Arista 7280CR3A) send the raw mirrored IP packet right after the GRE header
(usually with a key), still with protocol 0x88BE. `classify_88be` tells Ethernet and IP apart
from the bytes themselves instead of guessing: an IPv4 header must carry a valid checksum, an
IPv6 header a plausible next header and payload length, an Ethernet frame a known EtherType.
"""

from __future__ import annotations

from struct import Struct

from dfagent.wire.errors import DecodeError
from dfagent.wire.ip import looks_like_ipv4, looks_like_ipv6

ERSPAN2_VERSION = 1
ERSPAN3_VERSION = 2
ERSPAN2_HEADER = 8
ERSPAN3_HEADER = 12
ERSPAN3_PLATFORM = 8
FT_ETHERNET = 0
FT_IP = 2

_E2 = Struct("!HHI")
_E3 = Struct("!HHIHH")

# What follows 0x88BE / an ERSPAN III header.
PAYLOAD_ETHER = 0
PAYLOAD_IPV4 = 4
PAYLOAD_IPV6 = 6

#: EtherTypes that make the bytes at offset 12 look like a mirrored frame we care about.
_IP_OR_TAG_ETHERTYPES = frozenset((0x0800, 0x86DD, 0x8100, 0x88A8, 0x9100))


def parse_erspan2(buf: bytes, off: int, end: int) -> tuple[int, int, int, int, int, int, int]:
    """Return (session, vlan, cos, en, t, index, payload offset)."""
    if end - off < ERSPAN2_HEADER:
        raise DecodeError("erspan", off, "truncated type II header", f"{end - off} of 8 bytes")
    h0, h1, h2 = _E2.unpack_from(buf, off)
    if h0 >> 12 != ERSPAN2_VERSION:
        raise DecodeError("erspan", off, "wrong type II version", str(h0 >> 12))
    return (
        h1 & 0x3FF,
        h0 & 0xFFF,
        h1 >> 13,
        (h1 >> 11) & 3,
        (h1 >> 10) & 1,
        h2 & 0xFFFFF,
        off + ERSPAN2_HEADER,
    )


def parse_erspan3(buf: bytes, off: int, end: int) -> tuple[int, int, int, int, int]:
    """Return (session, vlan, frame type, payload kind, payload offset)."""
    if end - off < ERSPAN3_HEADER:
        raise DecodeError("erspan", off, "truncated type III header", f"{end - off} of 12 bytes")
    h0, h1, _ts, _sgt, h5 = _E3.unpack_from(buf, off)
    if h0 >> 12 != ERSPAN3_VERSION:
        raise DecodeError("erspan", off, "wrong type III version", str(h0 >> 12))
    ft = (h5 >> 10) & 0x1F
    p = off + ERSPAN3_HEADER
    if h5 & 1:
        if end - p < ERSPAN3_PLATFORM:
            raise DecodeError("erspan", p, "truncated platform sub-header", f"{end - p} of 8")
        p += ERSPAN3_PLATFORM
    if ft == FT_ETHERNET:
        kind = PAYLOAD_ETHER
    elif ft == FT_IP:
        if p >= end:
            raise DecodeError("erspan", p, "truncated payload")
        v = buf[p] >> 4
        if v == 4:
            kind = PAYLOAD_IPV4
        elif v == 6:
            kind = PAYLOAD_IPV6
        else:
            raise DecodeError("erspan", p, "IP frame type but no IP version", str(v))
    else:
        raise DecodeError("erspan", off, "unsupported frame type", str(ft))
    return h1 & 0x3FF, h0 & 0xFFF, ft, kind, p


def classify_88be(buf: bytes, off: int, end: int) -> int:
    """What follows GRE 0x88BE when there is no ERSPAN II header: Ethernet or raw IP."""
    if end - off < 1:
        raise DecodeError("erspan", off, "truncated payload")
    v = buf[off] >> 4
    ether = end - off >= 14 and (buf[off + 12] << 8 | buf[off + 13]) in _IP_OR_TAG_ETHERTYPES
    if v == 4:
        ip = looks_like_ipv4(buf, off, end)
        kind = PAYLOAD_IPV4
    elif v == 6:
        ip = looks_like_ipv6(buf, off, end)
        kind = PAYLOAD_IPV6
    else:
        return PAYLOAD_ETHER
    if ip and not ether:
        return kind
    if ether and not ip:
        return PAYLOAD_ETHER
    if ip and ether:
        raise DecodeError("erspan", off, "ambiguous payload: both Ethernet and IP look valid")
    raise DecodeError("erspan", off, "payload is neither Ethernet nor a valid IP header")
