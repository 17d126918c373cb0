"""Mirrored packet → `SynEvent`: the top-level decoder of `dfagent.wire`.

    decode_mirror(buf)        buf is the whole outer IP packet (what an IPv4 raw GRE socket
                              returns, or a pcap frame without its link-layer header)
    decode_gre(buf, mirror)   buf starts at the GRE header (what an IPv6 raw socket returns;
                              the kernel strips the IPv6 header), mirror is the packed source

Both return a `SynEvent` or a `Skip` and raise `DecodeError` for anything malformed.

Two paths, one answer. `decode_slow` walks every layer with the parsers of ip.py, gre.py,
erspan.py, ether.py and tcp.py; it is the reference. In front of it a fast path decodes the
shapes switches actually send (outer IPv4 without options; any GRE flags; ERSPAN I/II/III, TEB
or bare IP; at most one VLAN tag; inner IPv4 without options or IPv6 without extension
headers; not a fragment) with a handful of precompiled `struct` unpacks and no per-layer
function calls. Whenever anything looks unusual it gives up and the slow path decides, so
errors and odd packets are always judged by the reference code; the tests check that both
paths agree on the whole corpus and on fuzzed input.

Addresses are kept packed (`bytes`, 4 or 16 long) in the event: formatting three addresses
per packet would cost more than the rest of the decode. The `mirror`, `src` and `dst`
properties format them on demand, and packed bytes make cheap dictionary keys.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from struct import Struct
from struct import error as StructError
from types import ModuleType
from typing import Any, NamedTuple

from dfagent.wire.errors import (
    SKIP_FRAGMENT,
    SKIP_NOT_IP,
    SKIP_NOT_SYN,
    SKIP_NOT_TCP,
    DecodeError,
    Skip,
)
from dfagent.wire.erspan import (
    PAYLOAD_ETHER,
    PAYLOAD_IPV4,
    PAYLOAD_IPV6,
    classify_88be,
    parse_erspan2,
    parse_erspan3,
)
from dfagent.wire.ether import ETHERTYPE_IPV4, ETHERTYPE_IPV6, parse_ether
from dfagent.wire.gre import (
    GRE_S,
    PROTO_ERSPAN,
    PROTO_ERSPAN3,
    PROTO_IPV4,
    PROTO_IPV6,
    PROTO_TEB,
    parse_gre,
)
from dfagent.wire.ip import (
    FRAG_FIRST,
    FRAG_LATER,
    PROTO_GRE,
    PROTO_TCP,
    ipv4_checksum_ok,
    parse_ipv4,
    parse_ipv6,
)
from dfagent.wire.tcp import SYN_MASK, TCP_ACK, TCP_SYN, parse_tcp

ENCAP_ERSPAN1 = "erspan1"
ENCAP_ERSPAN2 = "erspan2"
ENCAP_ERSPAN3 = "erspan3"
ENCAP_TEB = "teb"
ENCAP_IP = "ip"
ENCAPS = (ENCAP_ERSPAN1, ENCAP_ERSPAN2, ENCAP_ERSPAN3, ENCAP_TEB, ENCAP_IP)

_NO_VLANS: tuple[int, ...] = ()


def format_addr(packed: bytes) -> str:
    """Packed IPv4 (4 bytes) or IPv6 (16 bytes) address → text."""
    if len(packed) == 4:
        return socket.inet_ntoa(packed)
    return socket.inet_ntop(socket.AF_INET6, packed)


class SynEvent(NamedTuple):
    """One mirrored TCP SYN (SYN set, ACK clear).

    `mirror_addr`, `src_addr` and `dst_addr` are packed addresses (see module doc); `mirror`,
    `src` and `dst` give them as text. `gre_key` and `session` are None when absent. `vlans`
    are the 802.1Q/802.1ad ids of the mirrored frame, outermost first. `fragment` is True for
    the first fragment of a fragmented packet (later fragments are skipped).
    """

    mirror_addr: bytes
    encap: str
    gre_key: int | None
    session: int | None
    vlans: tuple[int, ...]
    family: int
    src_addr: bytes
    dst_addr: bytes
    sport: int
    dport: int
    fragment: bool = False

    @property
    def mirror(self) -> str:
        return format_addr(self.mirror_addr)

    @property
    def src(self) -> str:
        return format_addr(self.src_addr)

    @property
    def dst(self) -> str:
        return format_addr(self.dst_addr)

    def to_json(self) -> dict[str, Any]:
        """The fields of `dfagent decode --json` (without `n`)."""
        d: dict[str, Any] = {
            "mirror": self.mirror,
            "encap": self.encap,
            "gre_key": self.gre_key,
            "session": self.session,
            "vlans": list(self.vlans),
            "family": self.family,
            "src": self.src,
            "dst": self.dst,
            "sport": self.sport,
            "dport": self.dport,
        }
        if self.fragment:
            d["fragment"] = True
        return d


class SynAckEvent(SynEvent):
    """A mirrored SYN-ACK (SYN and ACK set): the server's answer, the second chance of map
    mode. The fields are the SYN-ACK's own (``src`` is the VIP the server answered from,
    ``dst`` the client); :meth:`flow` turns them into the client's flow. Only the SYN-ACK
    decoders (`decode_synack`, `decode_synack_gre`) return it."""

    __slots__ = ()

    def flow(self) -> tuple[str, str, int, int]:
        """The connection as its SYN carried it: (client, VIP, client port, VIP port)."""
        return self.dst, self.src, self.dport, self.sport


Decoded = SynEvent | Skip
TCP_SYNACK = TCP_SYN | TCP_ACK


# ---------------------------------------------------------------------------------------------
# Reference path: one parser per layer.


def decode_slow(buf: bytes, want: int = TCP_SYN) -> Decoded:
    """Decode a whole outer IP packet, layer by layer (the reference for the fast path).
    ``want``: the TCP flags (of SYN and ACK) that make an event (`decode_synack`)."""
    end = len(buf)
    if end < 1:
        raise DecodeError("outer-ip", 0, "empty packet")
    v = buf[0] >> 4
    if v == 4:
        layer = "outer-ipv4"
        proto, off, end, mirror, _dst, frag = parse_ipv4(buf, 0, end, layer)
    elif v == 6:
        layer = "outer-ipv6"
        proto, off, end, mirror, _dst, frag = parse_ipv6(buf, 0, end, layer)
    else:
        raise DecodeError("outer-ip", 0, "wrong version", str(v))
    if frag == FRAG_LATER:
        return SKIP_FRAGMENT
    if proto != PROTO_GRE:
        raise DecodeError(layer, 0, "not GRE", f"protocol {proto}")
    return _decode_gre_slow(buf, off, end, mirror, want)


def decode_gre_slow(buf: bytes, mirror: bytes) -> Decoded:
    """Reference path of `decode_gre`."""
    return _decode_gre_slow(buf, 0, len(buf), mirror)


def decode_synack(buf: bytes) -> Decoded:
    """Like `decode_mirror`, but a SYN-ACK is the event (a `SynAckEvent`) and anything else
    TCP, a SYN included, is `SKIP_NOT_SYN`. Pure Python (the fast path, then the reference
    one): the receiver calls it only for packets the SYN decoder skipped as not-syn, and only
    when the second chance is on."""
    return decode_mirror_py(buf, want=TCP_SYNACK)


def decode_synack_gre(buf: bytes, mirror: bytes) -> Decoded:
    """`decode_synack` for a buffer that starts at GRE (see `decode_gre`)."""
    return decode_gre_py(buf, mirror, want=TCP_SYNACK)


def _decode_gre_slow(buf: bytes, off: int, end: int, mirror: bytes, want: int = TCP_SYN) -> Decoded:
    flags, proto, key, _seq, p = parse_gre(buf, off, end)
    session: int | None = None
    if proto == PROTO_ERSPAN:
        if flags & GRE_S and (p >= end or buf[p] >> 4 not in (4, 6)):
            # The S bit marks ERSPAN II; only a valid raw IP packet may stand in its place.
            session, _vlan, _cos, _en, _t, _index, p = parse_erspan2(buf, p, end)
            encap = ENCAP_ERSPAN2
            kind = PAYLOAD_ETHER
        else:
            kind = classify_88be(buf, p, end)
            if kind == PAYLOAD_ETHER:
                if flags & GRE_S:
                    raise DecodeError("erspan", p, "wrong type II version", str(buf[p] >> 4))
                encap = ENCAP_ERSPAN1
            else:
                encap = ENCAP_IP
    elif proto == PROTO_ERSPAN3:
        session, _vlan, _ft, kind, p = parse_erspan3(buf, p, end)
        encap = ENCAP_ERSPAN3
    elif proto == PROTO_TEB:
        encap, kind = ENCAP_TEB, PAYLOAD_ETHER
    elif proto == PROTO_IPV4:
        encap, kind = ENCAP_IP, PAYLOAD_IPV4
    elif proto == PROTO_IPV6:
        encap, kind = ENCAP_IP, PAYLOAD_IPV6
    else:
        raise DecodeError("gre", off, "unsupported protocol type", f"0x{proto:04x}")
    vlans = _NO_VLANS
    if kind == PAYLOAD_ETHER:
        etype, vlans, p = parse_ether(buf, p, end)
        if etype == ETHERTYPE_IPV4:
            kind = PAYLOAD_IPV4
        elif etype == ETHERTYPE_IPV6:
            kind = PAYLOAD_IPV6
        else:
            return SKIP_NOT_IP
    if kind == PAYLOAD_IPV4:
        proto, p, end, src, dst, frag = parse_ipv4(buf, p, end)
        family = 4
    else:
        proto, p, end, src, dst, frag = parse_ipv6(buf, p, end)
        family = 6
    if frag == FRAG_LATER:
        return SKIP_FRAGMENT
    if proto != PROTO_TCP:
        return SKIP_NOT_TCP
    sport, dport, tflags = parse_tcp(buf, p, end)
    if tflags & SYN_MASK != want:
        return SKIP_NOT_SYN
    cls = SynEvent if want == TCP_SYN else SynAckEvent
    return cls(
        mirror, encap, key, session, vlans, family, src, dst, sport, dport, frag == FRAG_FIRST
    )


# ---------------------------------------------------------------------------------------------
# Fast path. Returns None to hand the packet to the slow path; never raises anything but
# struct.error / IndexError (caught by the callers), which also mean "let the slow path say".

_new = tuple.__new__
_OUT4 = Struct("!BxHxxHxB2x4s4xHH").unpack_from  # vihl len frag proto src | gre flags, proto
_U16 = Struct("!H").unpack_from
_U32 = Struct("!I").unpack_from
_E2 = Struct("!HH").unpack_from  # ver/vlan, cos/en/t/session
_E3 = Struct("!HH6xH").unpack_from  # ver/vlan, cos/bso/t/session, (ts, sgt), p/ft/.../o
# IPv4 (no options) + TCP through the flags: vihl len frag proto src dst sport dport doff flags
_IP4TCP = Struct("!BxHxxHxB2x4s4sHH8xBB").unpack_from
# IPv6 (no extension headers) + TCP: ver byte, plen, next header, src dst sport dport doff flags
_IP6TCP = Struct("!BxxxHBx16s16sHH8xBB").unpack_from
_OUT4_LEN = 24
_ERSPAN_FT_MASK = 0x7C00  # p(1) ft(5) ...: ft must be 0 (Ethernet) on the fast path


def _fast_ip4(
    buf: bytes, o: int, mirror: bytes, encap: str, key: int | None, session: int | None,
    vlans: tuple[int, ...], want: int = TCP_SYN,
) -> Decoded | None:  # fmt: skip
    vihl, total, frag, proto, src, dst, sport, dport, doff, flags = _IP4TCP(buf, o)
    if vihl != 0x45 or frag & 0x3FFF or proto != 6 or total < 34 or doff < 0x50:
        return None
    if flags & 0x12 != want:
        return SKIP_NOT_SYN
    ev = (mirror, encap, key, session, vlans, 4, src, dst, sport, dport, False)
    return _new(SynEvent if want == TCP_SYN else SynAckEvent, ev)


def _fast_ip6(
    buf: bytes, o: int, mirror: bytes, encap: str, key: int | None, session: int | None,
    vlans: tuple[int, ...], want: int = TCP_SYN,
) -> Decoded | None:  # fmt: skip
    v, plen, nh, src, dst, sport, dport, doff, flags = _IP6TCP(buf, o)
    if v >> 4 != 6 or nh != 6 or plen < 14 or doff < 0x50:
        return None
    if flags & 0x12 != want:
        return SKIP_NOT_SYN
    ev = (mirror, encap, key, session, vlans, 6, src, dst, sport, dport, False)
    return _new(SynEvent if want == TCP_SYN else SynAckEvent, ev)


def _fast_gre(
    buf: bytes, o: int, mirror: bytes, gf: int, gp: int, want: int = TCP_SYN
) -> Decoded | None:
    """`o` points just past the 4-byte GRE base header whose flags are `gf`, protocol `gp`."""
    key = None
    if gf & 0x8000:
        o += 4
    if gf & 0x2000:
        key = _U32(buf, o)[0]
        o += 4
    if gf & 0x1000:
        o += 4
    session = None
    if gp == 0x88BE:
        if gf & 0x1000:
            h0, h1 = _E2(buf, o)
            if h0 >> 12 != 1:
                return None
            session = h1 & 0x3FF
            o += 8
            encap = ENCAP_ERSPAN2
        elif buf[o] >> 4 in (4, 6):  # maybe raw IP: the slow path tells it apart
            return None
        else:
            encap = ENCAP_ERSPAN1
    elif gp == 0x6558:
        encap = ENCAP_TEB
    elif gp == 0x22EB:
        h0, h1, h5 = _E3(buf, o)
        if h0 >> 12 != 2 or h5 & _ERSPAN_FT_MASK:
            return None
        session = h1 & 0x3FF
        o += 20 if h5 & 1 else 12
        encap = ENCAP_ERSPAN3
    elif gp == 0x0800:
        return _fast_ip4(buf, o, mirror, ENCAP_IP, key, session, _NO_VLANS, want)
    elif gp == 0x86DD:
        return _fast_ip6(buf, o, mirror, ENCAP_IP, key, session, _NO_VLANS, want)
    else:
        return None
    et = _U16(buf, o + 12)[0]
    if et == 0x0800:
        return _fast_ip4(buf, o + 14, mirror, encap, key, session, _NO_VLANS, want)
    if et == 0x86DD:
        return _fast_ip6(buf, o + 14, mirror, encap, key, session, _NO_VLANS, want)
    if et == 0x8100:
        tci, et = _E2(buf, o + 14)
        if et == 0x0800:
            return _fast_ip4(buf, o + 18, mirror, encap, key, session, (tci & 0xFFF,), want)
        if et == 0x86DD:
            return _fast_ip6(buf, o + 18, mirror, encap, key, session, (tci & 0xFFF,), want)
    return None


# The hot path of decode_mirror: for each GRE flags (C/K/S) × protocol combination, where the
# key, the ERSPAN header and the Ethernet frame (or bare IPv4) start in an outer-IPv4 packet
# without options. Everything after that is one unpack of Ethernet (+ one tag) + IPv4 + TCP.
_PLAN_ETHER = 0
_PLAN_ERSPAN2 = 1
_PLAN_ERSPAN3 = 2
_PLAN_IP4 = 3
_PLANS: dict[int, tuple[str, int, int, int, int]] = {}  # encap, kind, key off, erspan off, off


def _build_plans() -> None:
    for c in (0, 0x8000):
        for k in (0, 0x2000):
            for s in (0, 0x1000):
                o = _OUT4_LEN + (4 if c else 0)
                ko = o if k else 0
                o += (4 if k else 0) + (4 if s else 0)
                flags = c | k | s
                if s:
                    _PLANS[flags << 16 | 0x88BE] = (ENCAP_ERSPAN2, _PLAN_ERSPAN2, ko, o, o + 8)
                else:
                    _PLANS[flags << 16 | 0x88BE] = (ENCAP_ERSPAN1, _PLAN_ETHER, ko, 0, o)
                _PLANS[flags << 16 | 0x6558] = (ENCAP_TEB, _PLAN_ETHER, ko, 0, o)
                _PLANS[flags << 16 | 0x22EB] = (ENCAP_ERSPAN3, _PLAN_ERSPAN3, ko, o, o + 12)
                _PLANS[flags << 16 | 0x0800] = (ENCAP_IP, _PLAN_IP4, ko, 0, o)


_build_plans()
_ETH4 = Struct("!12xHBxHxxHxB2x4s4sHH8xBB").unpack_from  # ethertype + _IP4TCP
_ETHQ4 = Struct("!14xHHBxHxxHxB2x4s4sHH8xBB").unpack_from  # tci, ethertype + _IP4TCP
_E3O = Struct("!HH6xH").unpack_from
_OUT6 = Struct("!IHBx16s16xHH").unpack_from  # ver/tc/flow plen nh src | gre flags, proto
_ETHER_LOOK = frozenset((0x0800, 0x86DD, 0x8100, 0x88A8, 0x9100))  # as in erspan.py


def decode_mirror_py(buf: bytes, *, want: int = TCP_SYN) -> Decoded:
    """Decode a whole outer IP packet (IPv4 or IPv6) carrying a GRE mirror (pure Python).

    `buf` may be bytes, bytearray or a memoryview of either. ``want`` (keyword only: the C
    decoder hands its own positional arguments to this one): as in `decode_slow`.
    """
    try:
        vihl, total, frag, proto, mirror, gf, gp = _OUT4(buf, 0)
        if (
            vihl == 0x45
            and proto == 47
            and not gf & 0x4C07
            and not frag & 0x3FFF
            and total >= len(buf)  # a padded frame goes to the slow path, which trims it
        ):
            plan = _PLANS.get(gf << 16 | gp)  # no plan for reserved bits: _fast_gre
            if plan is not None:
                encap, kind, ko, eo, o = plan
                key = _U32(buf, ko)[0] if ko else None
                session = None
                if kind == 3:  # bare IPv4
                    vihl, total, frag, proto, src, dst, sport, dport, doff, flags = _IP4TCP(buf, o)
                    vlans = _NO_VLANS
                    et = 0x0800
                else:
                    if kind == 1:  # ERSPAN II
                        h0, h1 = _E2(buf, eo)
                        session = h1 & 0x3FF
                        if h0 >> 12 != 1:
                            kind = -1
                    elif kind == 2:  # ERSPAN III
                        h0, h1, h5 = _E3O(buf, eo)
                        session = h1 & 0x3FF
                        if h5 & 1:
                            o += 8
                        if h0 >> 12 != 2 or h5 & _ERSPAN_FT_MASK:
                            kind = -1
                    elif buf[o] & 0xD0 == 0x40:
                        # ERSPAN I whose first byte could start an IPv4/IPv6 header. Raw IPv4
                        # without options, with a valid checksum and no Ethernet look is taken
                        # here (the Arista 7280R3 case); anything else is left to classify_88be.
                        kind = -2
                    vlans = _NO_VLANS
                    if kind >= 0:
                        et, vihl, total, frag, proto, src, dst, sport, dport, doff, flags = _ETH4(
                            buf, o
                        )
                        if et == 0x8100:
                            (
                                tci,
                                et,
                                vihl,
                                total,
                                frag,
                                proto,
                                src,
                                dst,
                                sport,
                                dport,
                                doff,
                                flags,
                            ) = _ETHQ4(buf, o)
                            vlans = (tci & 0xFFF,)
                    elif (
                        kind == -2
                        and buf[o] == 0x45
                        and _U16(buf, o + 12)[0] not in _ETHER_LOOK
                        and ipv4_checksum_ok(buf, o, 20)
                    ):
                        vihl, total, frag, proto, src, dst, sport, dport, doff, flags = _IP4TCP(
                            buf, o
                        )
                        et = 0x0800
                        encap = ENCAP_IP
                    else:
                        et = 0
                if (
                    et == 0x0800
                    and vihl == 0x45
                    and proto == 6
                    and not frag & 0x3FFF
                    and total >= 34
                    and doff >= 0x50
                ):
                    if flags & 0x12 != want:
                        return SKIP_NOT_SYN
                    ev = (mirror, encap, key, session, vlans, 4, src, dst, sport, dport, False)
                    return _new(SynEvent if want == TCP_SYN else SynAckEvent, ev)
                if et == 0x86DD:
                    r = _fast_ip6(
                        buf, o + (18 if vlans else 14), mirror, encap, key, session, vlans, want
                    )
                    if r is not None:
                        return r
            r = _fast_gre(buf, _OUT4_LEN, mirror, gf, gp, want)
            if r is not None:
                return r
        elif vihl >> 4 == 6:
            vtf, plen, nh, mirror6, gf, gp = _OUT6(buf, 0)
            if nh == 47 and plen + 40 >= len(buf) and not gf & 0x4C07:
                r = _fast_gre(buf, 44, mirror6, gf, gp, want)
                if r is not None:
                    return r
    except (StructError, IndexError):
        pass
    return decode_slow(buf, want)


_GRE_BASE = Struct("!HH").unpack_from


def decode_gre_py(buf: bytes, mirror: bytes, *, want: int = TCP_SYN) -> Decoded:
    """Decode a buffer that starts at the GRE header; `mirror` is the packed outer source
    (pure Python). ``want``: as in `decode_slow`."""
    try:
        gf, gp = _GRE_BASE(buf, 0)
        if not gf & 0x4C07:
            r = _fast_gre(buf, 4, mirror, gf, gp, want)
            if r is not None:
                return r
    except (StructError, IndexError):
        pass
    return _decode_gre_slow(buf, 0, len(buf), mirror, want)


# ---------------------------------------------------------------------------------------------
# The C accelerator (_fastsyn.c, built by setup.py when a compiler is there). It walks the same
# layers as decode_slow in C and calls decode_mirror_py / decode_gre_py for anything it would
# have to reject or does not handle, so errors and skip reasons always come from the Python
# code above. DFAGENT_WIRE_PURE=1 keeps the pure-Python decoders (the extension is still
# loaded and configured, for the tests that compare the two).


def _load_fastsyn() -> ModuleType | None:
    try:
        from dfagent.wire import _fastsyn
    except ImportError:
        return None
    _fastsyn.configure(
        SynEvent,
        (ENCAP_ERSPAN1, ENCAP_ERSPAN2, ENCAP_ERSPAN3, ENCAP_TEB, ENCAP_IP),
        SKIP_NOT_SYN,
        SKIP_NOT_TCP,
        SKIP_NOT_IP,
        SKIP_FRAGMENT,
        decode_mirror_py,
        decode_gre_py,
    )
    return _fastsyn


#: The configured `dfagent.wire._fastsyn` module, or None when it is not built.
fastsyn = _load_fastsyn()

decode_mirror: Callable[[bytes], Decoded]
decode_gre: Callable[[bytes, bytes], Decoded]
if fastsyn is not None and os.environ.get("DFAGENT_WIRE_PURE") != "1":
    #: "c" or "python": which decoder `decode_mirror` and `decode_gre` are.
    IMPLEMENTATION = "c"
    decode_mirror = fastsyn.decode_mirror
    decode_gre = fastsyn.decode_gre
else:
    IMPLEMENTATION = "python"
    decode_mirror = decode_mirror_py
    decode_gre = decode_gre_py
