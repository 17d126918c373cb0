"""Lab tooling, not part of the agent: a stand-in for a switch's egress mirror sessions.

This kernel has no ERSPAN device for `tc mirred`, so on the lab router this shim does the
job a switch's `monitor session … destination tunnel mode gre` would do at each ECMP
member's *egress*: every TCP SYN leaving a member interface is wrapped in GRE + ERSPAN II,
with that member's session id, and sent to the agent's mirror receiver. Outgoing frames are
taken from an AF_PACKET socket per interface (packet type OUTGOING: after routing, on the
interface that really carried them), so the session id says which next hop the route chose.

    python -m dfagent.lab.mirror_shim --collector 127.0.0.1 --member eth2=1 --member eth3=2
"""

from __future__ import annotations

import argparse
import select
import signal
import socket
import struct
import sys

from dfagent.lab.mirror_sender import RawGreSender, erspan2_header, gre_header

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
ETHERTYPE_ERSPAN = 0x88BE
_TCP_SYN, _TCP_ACK = 0x02, 0x10


def is_syn(frame: bytes) -> bool:
    """An Ethernet frame carrying a TCP SYN (not SYN-ACK), IPv4 or IPv6 without ext headers."""
    if len(frame) < 14:
        return False
    ethertype = struct.unpack_from("!H", frame, 12)[0]
    if ethertype == 0x0800 and len(frame) >= 34:
        ihl = (frame[14] & 0x0F) * 4
        if frame[23] != 6 or len(frame) < 14 + ihl + 14:
            return False
        flags = frame[14 + ihl + 13]
    elif ethertype == 0x86DD and len(frame) >= 14 + 40 + 14:
        if frame[20] != 6:
            return False
        flags = frame[14 + 40 + 13]
    else:
        return False
    return bool(flags & _TCP_SYN) and not flags & _TCP_ACK


def serve(collector: str, members: dict[str, int]) -> None:
    socks: dict[int, tuple[socket.socket, int]] = {}
    for ifname, session in members.items():
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        s.bind((ifname, 0))
        socks[s.fileno()] = (s, session)
    out = RawGreSender(collector)
    seq = 0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"mirror shim: {members} -> {collector}", flush=True)
    while True:
        ready, _, _ = select.select(list(socks), [], [])
        for fd in ready:
            sock, session = socks[fd]
            frame, addr = sock.recvfrom(65535)
            if addr[2] != PACKET_OUTGOING or not is_syn(frame):
                continue
            seq = (seq + 1) & 0xFFFFFFFF
            header = gre_header(ETHERTYPE_ERSPAN, seq=seq) + erspan2_header(session)
            out.send(header + frame)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--collector", required=True, help="where the agent's receiver listens")
    ap.add_argument("--member", action="append", required=True, help="IFNAME=SESSION")
    args = ap.parse_args()
    members = {}
    for item in args.member:
        ifname, _, session = item.partition("=")
        members[ifname] = int(session)
    serve(args.collector, members)


if __name__ == "__main__":
    main()
