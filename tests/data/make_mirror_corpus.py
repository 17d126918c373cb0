#!/usr/bin/env python3
"""Generate the golden corpus of mirrored packets for dfagent.wire (issue 3).

    .venv/bin/python tests/data/make_mirror_corpus.py     # rewrites the files below

Writes:
    tests/data/mirror_corpus.jsonl   one case per line: {"name", "hex", "expect", "oracle"}
    tests/data/mirror_corpus.pcap    every case as an Ethernet frame, in the same order
                                     (for `dfagent decode`; packet n is line n)

`expect` is one of
    {"syn": {mirror, encap, gre_key, session, vlans, family, src, dst, sport, dport[, fragment]}}
    {"skipped": "<reason>"}
    {"error_layer": "<layer>"}

Good packets are built with scapy's own GRE / ERSPAN I / II / III / Dot1Q / Dot1AD / IPv6
extension-header layers, and their expected fields come from *scapy's dissection* of the bytes
("oracle": "scapy"), never from dfagent. Shapes scapy cannot dissect (raw IP after 0x88BE, the
ERSPAN III IP frame type) and the hand-made malformed cases take their expectation from how
they were built ("oracle": "built").
"""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path
from typing import Any

from scapy.contrib.erspan import (
    ERSPAN,
    ERSPAN_I,
    ERSPAN_II,
    ERSPAN_III,
    ERSPAN_PlatformSpecific,
)
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_NOP, IPOption_RR
from scapy.layers.inet6 import (
    ICMPv6EchoRequest,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
)
from scapy.layers.l2 import ARP, GRE, Dot1AD, Dot1Q, Ether
from scapy.packet import Packet, Raw
from scapy.utils import wrpcap

HERE = Path(__file__).resolve().parent
MIRROR, COLLECTOR = "5.5.5.5", "9.9.9.9"
MIRROR6, COLLECTOR6 = "2001:db8:ffff::5", "2001:db8:ffff::9"
MAC_DST, MAC_SRC = "00:1c:73:00:00:01", "00:1c:73:00:00:02"

cases: list[dict[str, Any]] = []


def outer4(**kw: Any) -> Packet:
    return IP(src=MIRROR, dst=COLLECTOR, **kw)


def outer6() -> Packet:
    return IPv6(src=MIRROR6, dst=COLLECTOR6)


def eth() -> Packet:
    return Ether(dst=MAC_DST, src=MAC_SRC)


def syn4(
    src: str = "12.12.12.1",
    dst: str = "1.1.1.1",
    sport: int = 30002,
    dport: int = 80,
    flags: str = "S",
    **ipkw: Any,
) -> Packet:
    return IP(src=src, dst=dst, **ipkw) / TCP(
        sport=sport, dport=dport, flags=flags, options=[("MSS", 1460)]
    )


def syn6(
    src: str = "2001:db8::1",
    dst: str = "2001:db8::80",
    sport: int = 40001,
    dport: int = 443,
    flags: str = "S",
) -> Packet:
    return IPv6(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags=flags)


# --------------------------------------------------------------------------------- the oracle


def _under_ip(layer: Packet) -> Packet:
    p = layer.underlayer
    while p is not None and not isinstance(p, (IP, IPv6)):
        p = p.underlayer
    assert p is not None
    return p


def scapy_expect(raw: bytes) -> dict[str, Any]:
    """What scapy says this mirrored packet carries."""
    pkt = IP(raw) if raw[0] >> 4 == 4 else IPv6(raw)
    gre = pkt[GRE]
    if pkt.haslayer(ERSPAN_II):
        encap, session = "erspan2", pkt[ERSPAN_II].session_id
    elif pkt.haslayer(ERSPAN_III):
        encap, session = "erspan3", pkt[ERSPAN_III].session_id
    elif pkt.haslayer(ERSPAN_I) or (gre.proto == 0x88BE and pkt.haslayer(Ether)):
        encap, session = "erspan1", None
    elif gre.proto == 0x6558:
        encap, session = "teb", None
    else:
        encap, session = "ip", None
    vlans = []
    layer = gre.payload
    while (
        layer is not None and not isinstance(layer, (IP, IPv6, Raw)) and layer.name != "NoPayload"
    ):
        if isinstance(layer, (Dot1Q, Dot1AD)):
            vlans.append(layer.vlan)
        layer = layer.payload
    if not pkt.haslayer(TCP):
        raise AssertionError("scapy finds no TCP: not a case for the scapy oracle")
    tcp = pkt[TCP]
    inner = _under_ip(tcp)
    flags = int(tcp.flags)
    if flags & 0x12 != 0x02:
        return {"skipped": "not-syn"}
    ev: dict[str, Any] = {
        "mirror": pkt.src,
        "encap": encap,
        "gre_key": gre.key if gre.key_present else None,
        "session": session,
        "vlans": vlans,
        "family": 4 if isinstance(inner, IP) else 6,
        "src": inner.src,
        "dst": inner.dst,
        "sport": tcp.sport,
        "dport": tcp.dport,
    }
    if isinstance(inner, IP):
        if inner.frag == 0 and inner.flags.MF:
            ev["fragment"] = True
    elif pkt.haslayer(IPv6ExtHdrFragment):
        fh = pkt[IPv6ExtHdrFragment]
        if fh.offset == 0 and fh.m:
            ev["fragment"] = True
    return {"syn": ev}


def good(name: str, pkt: Packet) -> None:
    raw = bytes(pkt)
    cases.append({"name": name, "hex": raw.hex(), "expect": scapy_expect(raw), "oracle": "scapy"})


def built(name: str, raw: bytes, expect: dict[str, Any]) -> None:
    cases.append({"name": name, "hex": raw.hex(), "expect": expect, "oracle": "built"})


def error(name: str, raw: bytes, layer: str) -> None:
    built(name, raw, {"error_layer": layer})


def skipped(name: str, raw: bytes, reason: str) -> None:
    built(name, raw, {"skipped": reason})


def syn_fields(**kw: Any) -> dict[str, Any]:
    d: dict[str, Any] = {
        "mirror": MIRROR,
        "encap": "ip",
        "gre_key": None,
        "session": None,
        "vlans": [],
        "family": 4,
        "src": "12.12.12.1",
        "dst": "1.1.1.1",
        "sport": 30002,
        "dport": 80,
    }
    d.update(kw)
    return {"syn": d}


# ------------------------------------------------------------------------------ good packets


def make_good() -> None:
    inner = syn4()
    # ERSPAN type I (Arista Trident/XGS): 4-byte GRE, 0x88BE, Ethernet
    good("erspan1 untagged", outer4() / GRE(proto=0x88BE) / eth() / inner)
    good("erspan1 802.1Q 100", outer4() / GRE(proto=0x88BE) / eth() / Dot1Q(vlan=100) / inner)
    good(
        "erspan1 QinQ 802.1ad 10 + 802.1Q 20",
        outer4() / GRE(proto=0x88BE) / eth() / Dot1AD(vlan=10) / Dot1Q(vlan=20) / inner,
    )
    good(
        "erspan1 three tags",
        outer4()
        / GRE(proto=0x88BE)
        / eth()
        / Dot1AD(vlan=1)
        / Dot1Q(vlan=2)
        / Dot1Q(vlan=4094)
        / inner,
    )
    good("erspan1 inner IPv6", outer4() / GRE(proto=0x88BE) / eth() / syn6())
    good("erspan1 inner IPv6 vlan", outer4() / GRE(proto=0x88BE) / eth() / Dot1Q(vlan=7) / syn6())
    good(
        "erspan1 inner IPv6 hop-by-hop + routing + dest-opts",
        outer4()
        / GRE(proto=0x88BE)
        / eth()
        / IPv6(src="2001:db8::1", dst="2001:db8::80")
        / IPv6ExtHdrHopByHop()
        / IPv6ExtHdrRouting(addresses=["2001:db8::99"])
        / IPv6ExtHdrDestOpt()
        / TCP(sport=1, dport=22, flags="S"),
    )
    good(
        "erspan1 inner IPv6 first fragment",
        outer4()
        / GRE(proto=0x88BE)
        / eth()
        / IPv6(src="2001:db8::1", dst="2001:db8::80")
        / IPv6ExtHdrFragment(offset=0, m=1, id=7)
        / TCP(sport=5, dport=443, flags="S"),
    )
    good(
        "erspan1 inner IPv4 options",
        outer4() / GRE(proto=0x88BE) / eth() / syn4(options=[IPOption_RR(routers=["1.2.3.4"])]),
    )
    good(
        "erspan1 inner IPv4 first fragment",
        outer4()
        / GRE(proto=0x88BE)
        / eth()
        / IP(src="12.12.12.1", dst="1.1.1.1", flags="MF", id=9)
        / TCP(sport=30002, dport=80, flags="S"),
    )
    good(
        "erspan1 GRE key",
        outer4() / GRE(proto=0x88BE, key_present=1, key=0xDEADBEEF) / eth() / inner,
    )
    good("erspan1 GRE checksum", outer4() / GRE(proto=0x88BE, chksum_present=1) / eth() / inner)
    good("erspan1 SYN with ECE+CWR", outer4() / GRE(proto=0x88BE) / eth() / syn4(flags="SEC"))
    good(
        "erspan1 SYN with payload (TFO)",
        outer4() / GRE(proto=0x88BE) / eth() / syn4() / Raw(b"GET / HTTP/1.1\r\n"),
    )
    good(
        "erspan1 SYN padded frame",
        outer4()
        / GRE(proto=0x88BE)
        / eth()
        / IP(src="12.12.12.1", dst="1.1.1.1")
        / TCP(sport=9, dport=80, flags="S")
        / Raw(b"\0" * 6),
    )  # trailing bytes beyond the IP length: Ethernet padding
    # ERSPAN type II: S bit, 8-byte header
    good(
        "erspan2 session 7",
        outer4()
        / GRE(proto=0x88BE, seqnum_present=1, sequence_number=42)
        / ERSPAN_II(session_id=7, vlan=100, cos=3, en=3, t=0, index=12345)
        / eth()
        / inner,
    )
    good(
        "erspan2 max session 1023 + 802.1Q",
        outer4()
        / GRE(proto=0x88BE, seqnum_present=1, sequence_number=1)
        / ERSPAN_II(session_id=1023)
        / eth()
        / Dot1Q(vlan=300)
        / inner,
    )
    good(
        "erspan2 with key",
        outer4()
        / GRE(proto=0x88BE, key_present=1, key=5, seqnum_present=1, sequence_number=2)
        / ERSPAN_II(session_id=12)
        / eth()
        / inner,
    )
    good(
        "erspan2 with checksum+key+seq",
        outer4()
        / GRE(
            proto=0x88BE,
            chksum_present=1,
            key_present=1,
            key=6,
            seqnum_present=1,
            sequence_number=3,
        )
        / ERSPAN_II(session_id=13)
        / eth()
        / syn6(),
    )
    # ERSPAN type III
    good(
        "erspan3 O=0", outer4() / GRE(proto=0x22EB) / ERSPAN_III(session_id=99, o=0) / eth() / inner
    )
    good(
        "erspan3 O=1 platform sub-header",
        outer4()
        / GRE(proto=0x22EB)
        / ERSPAN_III(session_id=100, o=1)
        / ERSPAN_PlatformSpecific(platf_id=3, info1=1, info2=2)
        / eth()
        / Dot1Q(vlan=5)
        / inner,
    )
    good(
        "erspan3 with key + seq",
        outer4()
        / GRE(proto=0x22EB, key_present=1, key=77, seqnum_present=1, sequence_number=9)
        / ERSPAN_III(session_id=1, timestamp=123456)
        / eth()
        / syn6(),
    )
    # transparent Ethernet bridging
    good("teb", outer4() / GRE(proto=0x6558) / eth() / inner)
    good("teb vlan", outer4() / GRE(proto=0x6558) / eth() / Dot1Q(vlan=42) / inner)
    good(
        "teb inner IPv6 with key",
        outer4() / GRE(proto=0x6558, key_present=1, key=1) / eth() / syn6(),
    )
    # bare IP
    good("ip GRE 0x0800", outer4() / GRE(proto=0x0800) / inner)
    good("ip GRE 0x86DD", outer4() / GRE(proto=0x86DD) / syn6())
    good("ip GRE 0x0800 with key", outer4() / GRE(proto=0x0800, key_present=1, key=9) / inner)
    # outer variations
    good(
        "outer IPv4 options",
        outer4(options=[IPOption_NOP(), IPOption_RR(routers=["9.9.9.8"])])
        / GRE(proto=0x88BE)
        / eth()
        / inner,
    )
    good(
        "outer IPv6 erspan2",
        outer6()
        / GRE(proto=0x88BE, seqnum_present=1, sequence_number=1)
        / ERSPAN_II(session_id=21)
        / eth()
        / inner,
    )
    good(
        "outer IPv6 with hop-by-hop + dest-opts",
        outer6() / IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt() / GRE(proto=0x88BE) / eth() / syn6(),
    )
    good("outer IPv4 first fragment", outer4(flags="MF", id=5) / GRE(proto=0x6558) / eth() / inner)
    # every GRE C/K/S combination with every Ethernet-carrying protocol
    for c in (0, 1):
        for k in (0, 1):
            for s in (0, 1):
                gkw: dict[str, Any] = {  # scapy field values
                    "chksum_present": c,
                    "key_present": k,
                    "key": 1000 + 4 * c + 2 * k + s if k else None,
                    "seqnum_present": s,
                    "sequence_number": 77 if s else None,
                }
                tag = f"C{c}K{k}S{s}"
                if s:
                    good(
                        f"gre {tag} erspan2",
                        outer4()
                        / GRE(proto=0x88BE, **gkw)
                        / ERSPAN_II(session_id=300 + c + k)
                        / eth()
                        / inner,
                    )
                else:
                    good(f"gre {tag} erspan1", outer4() / GRE(proto=0x88BE, **gkw) / eth() / inner)
                good(
                    f"gre {tag} erspan3",
                    outer4()
                    / GRE(proto=0x22EB, **gkw)
                    / ERSPAN_III(session_id=500 + s)
                    / eth()
                    / inner,
                )
                good(f"gre {tag} teb", outer4() / GRE(proto=0x6558, **gkw) / eth() / inner)
                good(f"gre {tag} ip", outer4() / GRE(proto=0x0800, **gkw) / inner)

    # skipped, judged by scapy too
    good("erspan1 SYN-ACK", outer4() / GRE(proto=0x88BE) / eth() / syn4(flags="SA"))
    good(
        "erspan2 RST",
        outer4() / GRE(proto=0x88BE, seqnum_present=1) / ERSPAN_II() / eth() / syn4(flags="R"),
    )
    good("teb ACK", outer4() / GRE(proto=0x6558) / eth() / syn6(flags="A"))


def make_built() -> None:
    """Shapes scapy cannot dissect; expectation from how they are built."""
    inner4 = bytes(syn4())
    inner6 = bytes(syn6())
    # Arista 7280CR3A: GRE key, protocol 0x88BE, then the raw IP packet
    built(
        "7280R3 raw IPv4 after 0x88BE + key",
        _fix_len(bytes(outer4() / GRE(proto=0x88BE, key_present=1, key=0x00010002)) + inner4),
        syn_fields(gre_key=0x00010002),
    )
    built(
        "raw IPv4 after 0x88BE, no key",
        _fix_len(bytes(outer4() / GRE(proto=0x88BE)) + inner4),
        syn_fields(),
    )
    built(
        "raw IPv6 after 0x88BE + key",
        _fix_len(bytes(outer4() / GRE(proto=0x88BE, key_present=1, key=3)) + inner6),
        syn_fields(
            gre_key=3, family=6, src="2001:db8::1", dst="2001:db8::80", sport=40001, dport=443
        ),
    )
    built(
        "raw IPv4 after 0x88BE with S bit (no ERSPAN II header)",
        _fix_len(bytes(outer4() / GRE(proto=0x88BE, seqnum_present=1, sequence_number=8)) + inner4),
        syn_fields(),
    )
    e3ip = struct.pack("!HHIHH", 0x2000, 55, 0, 0, 2 << 10)
    built(
        "erspan3 frame type IP (ft=2)",
        _fix_len(bytes(outer4() / GRE(proto=0x22EB)) + e3ip + inner4),
        syn_fields(encap="erspan3", session=55),
    )
    trunc = bytes(outer4() / GRE(proto=0x88BE) / eth() / syn4())
    built(
        "mirror truncated right after the TCP flags",
        _fix_len(trunc[: 20 + 4 + 14 + 20 + 14]),
        syn_fields(encap="erspan1"),
    )
    # GRE reserved0 bits 6-12 must be ignored (RFC 2784)
    g = bytearray(bytes(outer4() / GRE(proto=0x6558) / eth() / syn4()))
    g[20] |= 0x03
    g[21] |= 0xF8
    built("gre reserved0 bits 6-12 set (ignored)", bytes(g), syn_fields(encap="teb"))

    # skipped
    skipped("teb ARP", bytes(outer4() / GRE(proto=0x6558) / eth() / ARP()), "not-ip")
    skipped("erspan1 UDP", bytes(outer4() / GRE(proto=0x88BE) / eth() / IP() / UDP()), "not-tcp")
    skipped("ip ICMP", bytes(outer4() / GRE(proto=0x0800) / IP() / ICMP()), "not-tcp")
    skipped(
        "ip ICMPv6", bytes(outer4() / GRE(proto=0x86DD) / IPv6() / ICMPv6EchoRequest()), "not-tcp"
    )
    skipped(
        "inner IPv6 no next header", bytes(outer4() / GRE(proto=0x86DD) / IPv6(nh=59)), "not-tcp"
    )
    skipped(
        "inner IPv4 non-first fragment",
        bytes(
            outer4()
            / GRE(proto=0x88BE)
            / eth()
            / IP(src="1.1.1.1", dst="2.2.2.2", proto=6, frag=100)
            / Raw(b"x" * 20)
        ),
        "fragment",
    )
    skipped(
        "inner IPv6 non-first fragment",
        bytes(
            outer4()
            / GRE(proto=0x88BE)
            / eth()
            / IPv6()
            / IPv6ExtHdrFragment(nh=6, offset=10)
            / Raw(b"x" * 20)
        ),
        "fragment",
    )
    skipped(
        "outer IPv4 non-first fragment",
        bytes(outer4(frag=50, proto=47) / Raw(b"\0" * 40)),
        "fragment",
    )


def _fix_len(raw: bytes) -> bytes:
    """Set the outer IPv4 total length to the buffer's (a switch truncating a mirror does)."""
    b = bytearray(raw)
    struct.pack_into("!H", b, 2, len(b))
    struct.pack_into("!H", b, 10, 0)
    c = sum(struct.unpack("!10H", bytes(b[:20])))
    while c >> 16:
        c = (c & 0xFFFF) + (c >> 16)
    struct.pack_into("!H", b, 10, ~c & 0xFFFF)
    return bytes(b)


def make_malformed() -> None:
    # truncated at every byte of an ERSPAN II + 802.1Q + IPv4 + TCP mirror, up to the flags
    ref = bytes(
        outer4()
        / GRE(proto=0x88BE, seqnum_present=1, sequence_number=1)
        / ERSPAN_II(session_id=1)
        / eth()
        / Dot1Q(vlan=10)
        / syn4()
    )
    bounds = [
        (0, "outer-ip"),
        (1, "outer-ipv4"),
        (20, "gre"),
        (28, "erspan"),
        (36, "ether"),
        (54, "ipv4"),
        (74, "tcp"),
    ]
    for cut in range(0, 74 + 14):
        layer = [lay for start, lay in bounds if cut >= start][-1]
        raw = ref[:cut]
        error(f"erspan2 truncated at {cut} bytes", raw, layer)
    # the same, outer IPv6 + ERSPAN III O=1 + IPv6 inner
    ref6 = bytes(
        outer6()
        / GRE(proto=0x22EB)
        / ERSPAN_III(session_id=2, o=1)
        / ERSPAN_PlatformSpecific()
        / eth()
        / syn6()
    )
    bounds6 = [
        (0, "outer-ip"),
        (1, "outer-ipv6"),
        (40, "gre"),
        (44, "erspan"),
        (64, "ether"),
        (78, "ipv6"),
        (118, "tcp"),
    ]
    for cut in range(0, 118 + 14, 3):
        layer = [lay for start, lay in bounds6 if cut >= start][-1]
        error(f"outer6 erspan3 truncated at {cut} bytes", ref6[:cut], layer)

    base = bytes(outer4() / GRE(proto=0x88BE) / eth() / syn4())  # inner IPv4 at 38, TCP at 58

    def patch(raw: bytes, off: int, val: bytes) -> bytes:
        b = bytearray(raw)
        b[off : off + len(val)] = val
        return bytes(b)

    # bad lengths
    error("outer IHL 4", patch(base, 0, b"\x44"), "outer-ipv4")
    error("outer total length below header", patch(base, 2, b"\x00\x10"), "outer-ipv4")
    error("outer IHL 15 beyond the packet", patch(base[:50], 0, b"\x4f"), "outer-ipv4")
    error("inner IHL 3", patch(base, 38, b"\x43"), "ipv4")
    error("inner total length below header", patch(base, 40, b"\x00\x08"), "ipv4")
    error("inner total length cuts TCP before the flags", patch(base, 40, b"\x00\x1e"), "tcp")
    error("tcp data offset 4", patch(base, 58 + 12, b"\x40"), "tcp")
    b6 = bytes(
        outer4()
        / GRE(proto=0x86DD)
        / IPv6(src="2001:db8::1", dst="2001:db8::2")
        / IPv6ExtHdrDestOpt()
        / TCP(flags="S")
    )
    error("inner IPv6 extension header longer than the packet", patch(b6, 24 + 41, b"\x30"), "ipv6")
    # wrong versions
    error("gre version 1", patch(base, 21, b"\x01"), "gre")
    error("gre PPTP enhanced", _fix_len(bytes(outer4() / GRE(proto=0x880B)) + b"\0" * 40), "gre")
    error("outer version 5", patch(base, 0, b"\x55"), "outer-ip")
    error("inner version 6 under EtherType 0x0800", patch(base, 38, b"\x65"), "ipv4")
    error(
        "inner version 4 under GRE 0x86DD",
        _fix_len(bytes(outer4() / GRE(proto=0x86DD)) + bytes(syn4())),
        "ipv6",
    )
    e2 = bytes(
        outer4()
        / GRE(proto=0x88BE, seqnum_present=1, sequence_number=1)
        / ERSPAN_II(session_id=1)
        / eth()
        / syn4()
    )
    error("erspan2 header version 2 with S bit", patch(e2, 28, b"\x20"), "erspan")
    e3 = bytes(outer4() / GRE(proto=0x22EB) / ERSPAN_III(session_id=1) / eth() / syn4())
    error("erspan3 header version 1", patch(e3, 24, b"\x10"), "erspan")
    error("erspan3 frame type 5", patch(e3, 34, bytes(((5 << 2),))), "erspan")
    error(
        "erspan3 O=1 but no room for the platform sub-header",
        _fix_len(bytes(outer4() / GRE(proto=0x22EB) / ERSPAN_III(o=1)) + b"\0" * 4),
        "erspan",
    )
    # GRE bits a non-RFC-1701 receiver must refuse
    error("gre routing bit", patch(base, 20, b"\x40"), "gre")
    error("gre strict source route bit", patch(base, 20, b"\x08"), "gre")
    error("gre recursion bit 5", patch(base, 20, b"\x04"), "gre")
    error("gre unknown protocol", patch(base, 22, b"\x12\x34"), "gre")
    error(
        "gre key flag without room for the key",
        bytes(outer4(proto=47) / Raw(b"\x20\x00\x88\xbe\0")),
        "gre",
    )
    error("not GRE", bytes(outer4() / UDP() / Raw(b"x" * 30)), "outer-ipv4")
    # 0x88BE followed by something that is neither Ethernet nor a valid IP header
    bad_ip = bytearray(bytes(syn4()))
    bad_ip[10:12] = b"\xde\xad"  # wrong IPv4 checksum
    error(
        "0x88BE + IPv4 with a bad checksum",
        _fix_len(bytes(outer4() / GRE(proto=0x88BE)) + bytes(bad_ip)),
        "erspan",
    )
    # loops of extension headers / tags
    chain = IPv6(src="2001:db8::1", dst="2001:db8::2")
    for _ in range(12):
        chain = chain / IPv6ExtHdrDestOpt()
    error(
        "inner IPv6 12 destination-options headers",
        bytes(outer4() / GRE(proto=0x86DD) / chain / TCP(flags="S")),
        "ipv6",
    )
    hbh = IPv6(src=MIRROR6, dst=COLLECTOR6)
    for _ in range(20):
        hbh = hbh / IPv6ExtHdrHopByHop()
    error(
        "outer IPv6 20 hop-by-hop headers",
        bytes(hbh / GRE(proto=0x6558) / eth() / syn4()),
        "outer-ipv6",
    )
    tags = eth()
    for i in range(9):
        tags = tags / Dot1Q(vlan=i + 1)
    error("nine VLAN tags", bytes(outer4() / GRE(proto=0x6558) / tags / syn4()), "ether")


def main() -> int:
    _ = (ERSPAN,)  # importing scapy.contrib.erspan binds the ERSPAN layers to GRE
    make_good()
    make_built()
    make_malformed()
    names = [c["name"] for c in cases]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise SystemExit(f"duplicate case names: {dup}")
    with open(HERE / "mirror_corpus.jsonl", "w") as f:
        for c in cases:
            f.write(json.dumps(c, sort_keys=True) + "\n")
    frames = [
        Ether(dst=MAC_DST, src=MAC_SRC, type=0x86DD if c["hex"][:1] == "6" else 0x0800)
        / Raw(bytes.fromhex(c["hex"]))
        for c in cases
    ]
    for i, fr in enumerate(frames):
        fr.time = 1_700_000_000 + i / 1000  # fixed timestamps: a reproducible file
    wrpcap(str(HERE / "mirror_corpus.pcap"), frames)
    print(f"wrote {len(cases)} cases", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
