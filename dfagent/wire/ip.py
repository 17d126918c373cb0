"""IPv4 and IPv6 headers, outer (the mirror's tunnel) and inner (the mirrored packet).

Each parser takes `(buf, off, end, layer)` — the buffer, where the header starts, where the
enclosing layer's data ends — and returns the next protocol, where the payload starts and
ends (trimmed to the IP length field, so Ethernet padding never reaches TCP), the packed
source and destination addresses and the fragment state.

A buffer shorter than the IP length field is accepted: switches truncate mirrored packets and
captures have a snap length; only the headers we read must be present.
"""

from __future__ import annotations

from struct import Struct

from dfagent.wire.errors import DecodeError

PROTO_TCP = 6
PROTO_GRE = 47

# Fragment state of a packet.
FRAG_NONE = 0
FRAG_FIRST = 1  # offset 0, more fragments follow: the TCP header is there
FRAG_LATER = 2  # offset > 0: no transport header in this packet

_V4 = Struct("!BBHHHBBH4s4s")  # vihl tos len id frag ttl proto csum src dst
_V6 = Struct("!IHBB16s16s")  # ver/tc/flow plen next-header hop-limit src dst
_V6_FRAG = Struct("!BxH")  # next-header reserved offset/res/M

IPV4_HEADER = 20
IPV6_HEADER = 40

# IPv6 extension headers we walk (RFC 8200 §4): hop-by-hop, routing, fragment, destination
# options. Anything else ends the walk and is the upper-layer protocol.
EXT_HOP_BY_HOP = 0
EXT_ROUTING = 43
EXT_FRAGMENT = 44
EXT_DEST_OPTS = 60
NO_NEXT_HEADER = 59
IPV6_EXTENSIONS = frozenset((EXT_HOP_BY_HOP, EXT_ROUTING, EXT_FRAGMENT, EXT_DEST_OPTS))
#: A packet with more extension headers than this is refused (a chain of repeated headers is
#: the cheapest way to make a decoder spin).
MAX_EXTENSION_HEADERS = 8

IpHeader = tuple[
    int, int, int, bytes, bytes, int
]  # proto, payload off, payload end, src, dst, frag


def parse_ipv4(buf: bytes, off: int, end: int, layer: str = "ipv4") -> IpHeader:
    if end - off < IPV4_HEADER:
        raise DecodeError(layer, off, "truncated header", f"{end - off} of 20 bytes")
    vihl, _tos, total, _id, frag, _ttl, proto, _csum, src, dst = _V4.unpack_from(buf, off)
    if vihl >> 4 != 4:
        raise DecodeError(layer, off, "wrong version", str(vihl >> 4))
    hlen = (vihl & 0x0F) * 4
    if hlen < IPV4_HEADER:
        raise DecodeError(layer, off, "header length below 20", str(hlen))
    if total < hlen:
        raise DecodeError(layer, off, "total length below header length", f"{total} < {hlen}")
    if end - off < hlen:
        raise DecodeError(layer, off, "truncated options", f"{end - off} of {hlen} bytes")
    pend = min(end, off + total)
    if frag & 0x1FFF:
        state = FRAG_LATER
    elif frag & 0x2000:
        state = FRAG_FIRST
    else:
        state = FRAG_NONE
    return proto, off + hlen, pend, src, dst, state


def parse_ipv6(buf: bytes, off: int, end: int, layer: str = "ipv6") -> IpHeader:
    """Parse the fixed header and walk the extension headers (at most MAX_EXTENSION_HEADERS).

    For a non-first fragment the walk stops at the fragment header: what follows is data.
    """
    if end - off < IPV6_HEADER:
        raise DecodeError(layer, off, "truncated header", f"{end - off} of 40 bytes")
    vtf, plen, nh, _hops, src, dst = _V6.unpack_from(buf, off)
    if vtf >> 28 != 6:
        raise DecodeError(layer, off, "wrong version", str(vtf >> 28))
    pend = min(end, off + IPV6_HEADER + plen)
    p = off + IPV6_HEADER
    state = FRAG_NONE
    count = 0
    while nh in IPV6_EXTENSIONS:
        count += 1
        if count > MAX_EXTENSION_HEADERS:
            raise DecodeError(layer, p, "too many extension headers", f"> {MAX_EXTENSION_HEADERS}")
        if pend - p < 8:
            raise DecodeError(layer, p, "truncated extension header", f"next header {nh}")
        if nh == EXT_FRAGMENT:
            nxt, offm = _V6_FRAG.unpack_from(buf, p)
            hlen = 8
            if offm & 0xFFF8:
                state = FRAG_LATER
            elif offm & 1:
                state = FRAG_FIRST
        else:
            nxt = buf[p]
            hlen = (buf[p + 1] + 1) * 8
            if pend - p < hlen:
                raise DecodeError(layer, p, "truncated extension header", f"next header {nh}")
        p += hlen
        nh = nxt
        if state == FRAG_LATER:
            break
    return nh, p, pend, src, dst, state


_SUMS: dict[int, Struct] = {}


def ipv4_checksum_ok(buf: bytes, off: int, hlen: int) -> bool:
    """True when the IPv4 header at `off` (of `hlen` bytes, all present) sums to 0xFFFF."""
    s = _SUMS.get(hlen)
    if s is None:
        s = _SUMS[hlen] = Struct(f"!{hlen // 2}H")
    total = sum(s.unpack_from(buf, off))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total == 0xFFFF


def looks_like_ipv4(buf: bytes, off: int, end: int) -> bool:
    """A complete IPv4 header with a valid checksum starts at `off`."""
    if end - off < IPV4_HEADER or buf[off] >> 4 != 4:
        return False
    hlen = (buf[off] & 0x0F) * 4
    return hlen >= IPV4_HEADER and end - off >= hlen and ipv4_checksum_ok(buf, off, hlen)


_PLAUSIBLE_V6_NEXT = frozenset((6, 17, 58, NO_NEXT_HEADER)) | IPV6_EXTENSIONS


def looks_like_ipv6(buf: bytes, off: int, end: int) -> bool:
    """An IPv6 header starts at `off`: version 6, a plausible next header, and a payload
    length that covers what follows (a truncated mirror only ever has less, never more)."""
    if end - off < IPV6_HEADER or buf[off] >> 4 != 6:
        return False
    _vtf, plen, nh, _hops, _src, _dst = _V6.unpack_from(buf, off)
    return nh in _PLAUSIBLE_V6_NEXT and IPV6_HEADER + plen >= end - off
