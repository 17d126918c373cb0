"""GRE (RFC 2784, with the key and sequence number extensions of RFC 2890).

The first 16 bits are flags and version:

    bit 0  C  checksum present (then 2 bytes checksum + 2 bytes reserved1)
    bit 1  R  routing present (RFC 1701 only)       ┐ RFC 2784 §2.3: a receiver MUST discard
    bit 2  K  key present (RFC 2890)                │ a packet where any of bits 1-5 is set,
    bit 3  S  sequence number present (RFC 2890)    │ unless it implements RFC 1701; RFC 2890
    bit 4  s  strict source route (RFC 1701 only)   │ gives bits 2 and 3 back. So R, s and
    bits 5-7  recursion control (RFC 1701 only)     ┘ bit 5 must be 0.
    bits 6-12 reserved0: ignored on receipt (RFC 2784)
    bits 13-15 version: must be 0 (1 is PPTP's enhanced GRE)

Then 2 bytes of protocol type and the optional fields in the order checksum, key, sequence.
The checksum is not verified: switches rarely set it and a truncated mirror cannot be checked.
"""

from __future__ import annotations

from struct import Struct

from dfagent.wire.errors import DecodeError

GRE_C = 0x8000
GRE_R = 0x4000
GRE_K = 0x2000
GRE_S = 0x1000
GRE_SSR = 0x0800
GRE_RECUR = 0x0700
GRE_VERSION = 0x0007
#: Bits a receiver that does not implement RFC 1701 must find clear (R, s, recursion bit 5).
GRE_MUST_BE_ZERO = GRE_R | GRE_SSR | 0x0400

PROTO_IPV4 = 0x0800
PROTO_IPV6 = 0x86DD
PROTO_TEB = 0x6558  # transparent Ethernet bridging
PROTO_ERSPAN = 0x88BE  # ERSPAN type I (no header) and type II (S bit + 8-byte header)
PROTO_ERSPAN3 = 0x22EB  # ERSPAN type III

_BASE = Struct("!HH")
_U32 = Struct("!I")

GreHeader = tuple[int, int, int | None, int | None, int]  # flags, proto, key, seq, payload off


def parse_gre(buf: bytes, off: int, end: int) -> GreHeader:
    if end - off < 4:
        raise DecodeError("gre", off, "truncated header", f"{end - off} of 4 bytes")
    flags, proto = _BASE.unpack_from(buf, off)
    if flags & GRE_VERSION:
        raise DecodeError("gre", off, "version is not 0", str(flags & GRE_VERSION))
    if flags & GRE_MUST_BE_ZERO:
        raise DecodeError(
            "gre", off, "RFC 1701 routing/strict-route/recursion bits set", f"0x{flags:04x}"
        )
    hlen = 4 + (4 if flags & GRE_C else 0) + (4 if flags & GRE_K else 0)
    hlen += 4 if flags & GRE_S else 0
    if end - off < hlen:
        raise DecodeError("gre", off, "truncated optional fields", f"{end - off} of {hlen} bytes")
    p = off + 4
    if flags & GRE_C:
        p += 4
    key = seq = None
    if flags & GRE_K:
        key = _U32.unpack_from(buf, p)[0]
        p += 4
    if flags & GRE_S:
        seq = _U32.unpack_from(buf, p)[0]
        p += 4
    return flags, proto, key, seq, p
