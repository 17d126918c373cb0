"""Tooling, not the receive path: build mirrored-SYN packets with `struct` and send them.

Used by tests, `dfagent bench mirror` and lab senders (e.g. a "mirror shim" that turns
NFLOG'd SYNs into GRE+ERSPAN II packets). Nothing in the receive path imports this module.

It is the inverse of `dfagent.wire` for the encapsulations switches send: `mirrored_syn(...)`
returns the bytes of a GRE packet (with or without the outer IP header) carrying a TCP SYN the
way an Arista (or other) switch would mirror it.
Checksums (outer and inner IPv4, TCP) are filled in.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import ipaddress
import socket
from struct import Struct
from typing import Literal

_U16 = Struct("!H")
_IP4 = Struct("!BBHHHBBH4s4s")
_IP6 = Struct("!IHBB16s16s")
_TCP = Struct("!HHIIBBHHH")
_GRE = Struct("!HH")
_U32 = Struct("!I")

TCP_SYN = 0x02
TCP_ACK = 0x10
ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_IPV6 = 0x86DD

Encap = Literal["erspan1", "erspan2", "erspan3", "teb", "ip"]
ENCAPS: tuple[Encap, ...] = ("erspan1", "erspan2", "erspan3", "teb", "ip")


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071)."""
    if len(data) % 2:
        data += b"\0"
    total = sum(Struct(f"!{len(data) // 2}H").unpack(data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def pack_addr(addr: str | bytes) -> bytes:
    if isinstance(addr, bytes):
        return addr
    return ipaddress.ip_address(addr).packed


def tcp_segment(
    src: bytes,
    dst: bytes,
    sport: int,
    dport: int,
    flags: int = TCP_SYN,
    seq: int = 1,
    options: bytes = b"\x02\x04\x05\xb4",  # MSS 1460
    payload: bytes = b"",
) -> bytes:
    """A TCP segment with a correct checksum for the given packed addresses."""
    if len(options) % 4:
        options += b"\0" * (4 - len(options) % 4)
    doff = (20 + len(options)) // 4
    ack = 0 if not flags & TCP_ACK else 1
    hdr = _TCP.pack(sport, dport, seq, ack, doff << 4, flags, 64240, 0, 0) + options
    seg = hdr + payload
    proto_len = len(seg)
    if len(src) == 4:
        pseudo = src + dst + bytes((0, 6)) + _U16.pack(proto_len)
    else:
        pseudo = src + dst + _U32.pack(proto_len) + b"\0\0\0\x06"
    c = checksum(pseudo + seg)
    return seg[:16] + _U16.pack(c) + seg[18:]


def ipv4_packet(
    src: bytes,
    dst: bytes,
    proto: int,
    payload: bytes,
    ttl: int = 64,
    ident: int = 0,
    frag: int = 0,
    options: bytes = b"",
    total: int | None = None,
) -> bytes:
    """An IPv4 packet; `frag` is the raw flags+offset field, `total` overrides the length."""
    if len(options) % 4:
        options += b"\0" * (4 - len(options) % 4)
    ihl = 5 + len(options) // 4
    length = ihl * 4 + len(payload) if total is None else total
    hdr = _IP4.pack(0x40 | ihl, 0, length, ident, frag, ttl, proto, 0, src, dst) + options
    hdr = hdr[:10] + _U16.pack(checksum(hdr)) + hdr[12:]
    return hdr + payload


def ipv6_packet(
    src: bytes,
    dst: bytes,
    nh: int,
    payload: bytes,
    hops: int = 64,
    ext: tuple[tuple[int, bytes], ...] = (),
) -> bytes:
    """An IPv6 packet; `ext` are (header type, header bytes without the next-header byte)."""
    body = payload
    next_header = nh
    for htype, hbytes in reversed(ext):
        body = bytes((next_header,)) + hbytes + body
        next_header = htype
    return _IP6.pack(0x60000000, len(body), next_header, hops, src, dst) + body


def ether_frame(
    payload: bytes,
    ethertype: int,
    vlans: tuple[int, ...] = (),
    dst_mac: bytes = b"\x00\x1c\x73\x00\x00\x01",
    src_mac: bytes = b"\x00\x1c\x73\x00\x00\x02",
    outer_tpid: int = 0x88A8,
) -> bytes:
    """An Ethernet frame; with two or more `vlans` the outermost tag uses `outer_tpid`."""
    tags = b""
    for i, vid in enumerate(vlans):
        tpid = outer_tpid if (i == 0 and len(vlans) > 1) else 0x8100
        tags += _U16.pack(tpid) + _U16.pack(vid & 0xFFF)
    return dst_mac + src_mac + tags + _U16.pack(ethertype) + payload


def gre_header(
    proto: int,
    key: int | None = None,
    seq: int | None = None,
    csum: bool = False,
    version: int = 0,
    extra_flags: int = 0,
) -> bytes:
    flags = (0x8000 if csum else 0) | (0x2000 if key is not None else 0)
    flags |= (0x1000 if seq is not None else 0) | version | extra_flags
    out = _GRE.pack(flags, proto)
    if csum:
        out += b"\0\0\0\0"  # checksum left 0: receivers here do not verify it
    if key is not None:
        out += _U32.pack(key)
    if seq is not None:
        out += _U32.pack(seq)
    return out


def erspan2_header(
    session: int, vlan: int = 0, cos: int = 0, en: int = 0, t: int = 0, index: int = 0
) -> bytes:
    return Struct("!HHI").pack(
        0x1000 | (vlan & 0xFFF),
        (cos & 7) << 13 | (en & 3) << 11 | (t & 1) << 10 | (session & 0x3FF),
        index & 0xFFFFF,
    )


def erspan3_header(
    session: int,
    vlan: int = 0,
    timestamp: int = 0,
    ft: int = 0,
    platform: bytes | None = None,
) -> bytes:
    o = 1 if platform is not None else 0
    hdr = Struct("!HHIHH").pack(
        0x2000 | (vlan & 0xFFF), session & 0x3FF, timestamp, 0, (ft & 0x1F) << 10 | o
    )
    return hdr + (platform or b"")


def inner_syn(
    src: str | bytes,
    dst: str | bytes,
    sport: int,
    dport: int,
    flags: int = TCP_SYN,
) -> tuple[int, bytes]:
    """(EtherType, IP packet) of a client's TCP SYN."""
    s, d = pack_addr(src), pack_addr(dst)
    seg = tcp_segment(s, d, sport, dport, flags)
    if len(s) == 4:
        return ETHERTYPE_IPV4, ipv4_packet(s, d, 6, seg)
    return ETHERTYPE_IPV6, ipv6_packet(s, d, 6, seg)


def gre_payload(
    encap: Encap,
    inner_type: int,
    inner: bytes,
    vlans: tuple[int, ...] = (),
    key: int | None = None,
    session: int = 1,
    seq: int = 0,
) -> bytes:
    """GRE header + what follows it, for an inner IP packet (of EtherType `inner_type`)."""
    if encap == "erspan1":
        return gre_header(0x88BE, key=key) + ether_frame(inner, inner_type, vlans)
    if encap == "erspan2":
        hdr = gre_header(0x88BE, key=key, seq=seq) + erspan2_header(session)
        return hdr + ether_frame(inner, inner_type, vlans)
    if encap == "erspan3":
        hdr = gre_header(0x22EB, key=key) + erspan3_header(session)
        return hdr + ether_frame(inner, inner_type, vlans)
    if encap == "teb":
        return gre_header(0x6558, key=key) + ether_frame(inner, inner_type, vlans)
    if encap == "ip":
        return gre_header(inner_type, key=key) + inner
    raise ValueError(f"unknown encapsulation {encap!r}")


def mirrored_syn(
    encap: Encap,
    mirror: str,
    collector: str,
    src: str,
    dst: str,
    sport: int,
    dport: int,
    *,
    vlans: tuple[int, ...] = (),
    key: int | None = None,
    session: int = 1,
    seq: int = 0,
    flags: int = TCP_SYN,
    outer: bool = True,
) -> bytes:
    """A mirrored TCP SYN: the outer IP packet (`outer=True`) or just GRE onwards."""
    itype, inner = inner_syn(src, dst, sport, dport, flags)
    payload = gre_payload(encap, itype, inner, vlans, key, session, seq)
    if not outer:
        return payload
    m, c = pack_addr(mirror), pack_addr(collector)
    if len(m) == 4:
        return ipv4_packet(m, c, 47, payload)
    return ipv6_packet(m, c, 47, payload)


def family_of(addr: str) -> int:
    return socket.AF_INET if ipaddress.ip_address(addr).version == 4 else socket.AF_INET6


class RawGreSender:
    """Send GRE packets from a raw socket, as a switch's mirror session would.

    For IPv4 the kernel builds the outer header (protocol 47) from the socket: pass `source`
    to choose the mirror address (it must be an address of this namespace). Give it what
    `mirrored_syn(..., outer=False)` returns. IPv6 works the same way.
    """

    def __init__(self, collector: str, source: str | None = None, sndbuf: int = 4 << 20) -> None:
        self.family = family_of(collector)
        self.sock = socket.socket(self.family, socket.SOCK_RAW, socket.IPPROTO_GRE)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
            if source is not None:
                self.sock.bind((source, 0))
        except OSError:
            self.sock.close()
            raise
        self.dest = (collector, 0)

    def send(self, gre_packet: bytes) -> None:
        self.sock.sendto(gre_packet, self.dest)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawGreSender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Iovec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


class _Msghdr(ctypes.Structure):
    _fields_ = [
        ("msg_name", ctypes.c_void_p),
        ("msg_namelen", ctypes.c_uint32),
        ("msg_iov", ctypes.POINTER(_Iovec)),
        ("msg_iovlen", ctypes.c_size_t),
        ("msg_control", ctypes.c_void_p),
        ("msg_controllen", ctypes.c_size_t),
        ("msg_flags", ctypes.c_int),
    ]


class _Mmsghdr(ctypes.Structure):
    _fields_ = [("msg_hdr", _Msghdr), ("msg_len", ctypes.c_uint)]


_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


class MmsgBlaster:
    """Send a fixed set of pre-built packets with sendmmsg(2) (via ctypes): one system call
    per batch, so a Python sender is limited by the kernel rather than the interpreter.

    `sock` is a connectionless socket (e.g. `RawGreSender.sock`), `dest` its destination.
    """

    def __init__(self, sock: socket.socket, dest: str, packets: list[bytes]) -> None:
        if not packets:
            raise ValueError("no packets")
        self.fd = sock.fileno()
        n = len(packets)
        if sock.family == socket.AF_INET:
            name = Struct("=HH4s8x").pack(socket.AF_INET, 0, socket.inet_aton(dest))
        else:
            name = Struct("=HHI16sI").pack(
                socket.AF_INET6, 0, 0, socket.inet_pton(socket.AF_INET6, dest), 0
            )
        self._name = ctypes.create_string_buffer(name, len(name))
        self._bufs = [ctypes.create_string_buffer(p, len(p)) for p in packets]
        # twice the packets, so any window of up to n consecutive entries is contiguous
        self._iov = (_Iovec * n)()
        self._msgs = (_Mmsghdr * (2 * n))()
        for i, b in enumerate(self._bufs):
            self._iov[i].iov_base = ctypes.cast(b, ctypes.c_void_p)
            self._iov[i].iov_len = len(packets[i])
        for j in range(2 * n):
            h = self._msgs[j].msg_hdr
            h.msg_name = ctypes.cast(self._name, ctypes.c_void_p)
            h.msg_namelen = len(name)
            h.msg_iov = ctypes.pointer(self._iov[j % n])
            h.msg_iovlen = 1
        self.n = n
        self._pos = 0

    def send(self, count: int) -> tuple[int, int]:
        """Send `count` packets (at most n per call to sendmmsg); return (sent, errors)."""
        sent = errors = 0
        size = ctypes.sizeof(_Mmsghdr)
        base = ctypes.addressof(self._msgs)
        while sent + errors < count:
            k = min(count - sent - errors, self.n)
            r = _libc.sendmmsg(self.fd, ctypes.c_void_p(base + self._pos * size), k, 0)
            if r < 0:
                err = ctypes.get_errno()
                if err == errno.EINTR:
                    continue
                errors += 1  # e.g. ENOBUFS: count the first packet as lost, move on
                r = 1
            else:
                sent += r
            self._pos = (self._pos + r) % self.n
        return sent, errors
