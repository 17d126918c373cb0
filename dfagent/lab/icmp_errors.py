"""Forge and watch ICMP errors about lab flows (path MTU discovery, RFC 7690's case).

``send`` (on a router between the client and the load balancer) sends one "fragmentation
needed" (IPv4) or "packet too big" (IPv6) per flow to the VIP, quoting the packet the
server would have sent to the client (VIP:port → client:cport), as a router with a smaller
MTU toward the client does. The quoted TCP sequence number is 0 and the MTU field 1500, so
a server's TCP ignores them (out of window) and no server's path MTU changes: they only
measure where each error is delivered.

``watch`` (on each server) opens raw ICMP sockets, prints ``ready``, and on any input line
prints the client ports of the errors that reached this server as JSON, then exits.

    python -m dfagent.lab.icmp_errors send --client 10.1.0.10 --client fd00:1::10 < flows.json
    python -m dfagent.lab.icmp_errors watch --vip 1.1.1.1 --vip 2001:db8::1
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import select
import socket
import struct
import sys

FAKE_MTU = 1500  # never lowers a path MTU (see the module doc)
PORT = 80


def _csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def frag_needed(vip: str, client: str, cport: int, sport: int = PORT) -> bytes:
    """ICMPv4 type 3 code 4 quoting VIP:sport → client:cport (IP header + 8 bytes)."""
    inner = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 1500, 0, 0x4000, 64, socket.IPPROTO_TCP, 0,
        socket.inet_aton(vip), socket.inet_aton(client),
    )  # fmt: skip
    inner = inner[:10] + struct.pack("!H", _csum(inner)) + inner[12:]
    body = inner + struct.pack("!HHI", sport, cport, 0)
    head = struct.pack("!BBHHH", 3, 4, 0, 0, FAKE_MTU)
    return struct.pack("!BBH", 3, 4, _csum(head + body)) + head[4:] + body


def packet_too_big(vip: str, client: str, cport: int, sport: int = PORT) -> bytes:
    """ICMPv6 type 2 quoting VIP:sport → client:cport (the kernel fills the checksum)."""
    inner = struct.pack(
        "!IHBB16s16s", 6 << 28, 1460, socket.IPPROTO_TCP, 64,
        socket.inet_pton(socket.AF_INET6, vip), socket.inet_pton(socket.AF_INET6, client),
    )  # fmt: skip
    return struct.pack("!BBHI", 2, 0, 0, FAKE_MTU) + inner + struct.pack("!HHI", sport, cport, 0)


def send(clients: list[str], flows: list[list[object]]) -> dict[str, int]:
    by_fam = {ipaddress.ip_address(c).version: c for c in clients}
    s4 = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    s6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    sent = 0
    for vip, cport, *_ in flows:
        vip, cport = str(vip), int(str(cport))
        if ":" in vip:
            s6.sendto(packet_too_big(vip, by_fam[6], cport), (vip, 0))
        else:
            s4.sendto(frag_needed(vip, by_fam[4], cport), (vip, 0))
        sent += 1
    return {"sent": sent}


def parse4(pkt: bytes, vips: set[str]) -> int | None:
    """The quoted client port of a "fragmentation needed" about VIP:PORT (whole IPv4 packet)."""
    ihl = (pkt[0] & 0x0F) * 4
    if len(pkt) < ihl + 8 + 28 or pkt[ihl] != 3 or pkt[ihl + 1] != 4:
        return None
    inner = pkt[ihl + 8 :]
    iihl = (inner[0] & 0x0F) * 4
    if inner[9] != socket.IPPROTO_TCP or socket.inet_ntoa(inner[12:16]) not in vips:
        return None
    sport, dport = struct.unpack("!HH", inner[iihl : iihl + 4])
    return dport if sport == PORT else None


def parse6(msg: bytes, vips: set[str]) -> int | None:
    """The quoted client port of a "packet too big" about VIP:PORT (the ICMPv6 message)."""
    if len(msg) < 8 + 40 + 4 or msg[0] != 2:
        return None
    inner = msg[8:]
    src = socket.inet_ntop(socket.AF_INET6, inner[8:24])
    if inner[6] != socket.IPPROTO_TCP or src not in vips:
        return None
    sport, dport = struct.unpack("!HH", inner[40:44])
    return dport if sport == PORT else None


def watch(vips: list[str]) -> None:
    v = {str(ipaddress.ip_address(a)) for a in vips}
    s4 = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    s6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    seen: list[list[int]] = []
    print("ready", flush=True)
    while True:
        ready, _, _ = select.select([s4, s6, sys.stdin], [], [])
        if sys.stdin in ready:
            break
        for s, fam, parse in ((s4, 4, parse4), (s6, 6, parse6)):
            if s in ready:
                port = parse(s.recv(65535), v)
                if port is not None:
                    seen.append([fam, port])
    print(json.dumps({"ports": seen}), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("send")
    s.add_argument("--client", action="append", required=True)
    w = sub.add_parser("watch")
    w.add_argument("--vip", action="append", required=True)
    args = ap.parse_args()
    if args.cmd == "send":
        print(json.dumps(send(args.client, json.load(sys.stdin))), flush=True)
    else:
        watch(args.vip)


if __name__ == "__main__":
    main()
