"""A tiny TCP (and optionally UDP) service for labs: answers every request line with its name
(or the client's address), on long-lived connections, IPv4 and IPv6 on one socket.

Run as `python -m dfagent.lab.service --name s1 --port 8080 [--reply name|peer]
[--udp-port 443]`. One thread, `selectors`, so ten thousand idle connections cost nothing.

- TCP: a line ``big N`` is answered with the name, a space and N bytes of ``x`` (a reply
  larger than a path's MTU, for path MTU discovery); any other line with the name alone.
  Replies that do not fit the socket buffer wait for it (never block the other clients).
- UDP: every datagram is answered with the name, a space and the datagram itself (so a
  client can match replies to requests: one 4-tuple per session, QUIC-like).
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import selectors
import signal
import socket
import sys
from dataclasses import dataclass, field

BIG = b"big "
MAX_BIG = 16 * 1024 * 1024


@dataclass
class _Conn:
    sock: socket.socket
    answer: bytes
    inbuf: bytes = b""
    out: bytearray = field(default_factory=bytearray)


def _replies(c: _Conn) -> None:
    """Queue one reply per complete request line."""
    *lines, c.inbuf = c.inbuf.split(b"\n")
    for line in lines:
        if line.startswith(BIG) and line[4:].strip().isdigit():
            n = min(int(line[4:]), MAX_BIG)
            c.out += c.answer[:-1] + b" " + b"x" * n + b"\n"
        else:
            c.out += c.answer


def _listen(port: int, kind: int, family: int = socket.AF_INET6) -> socket.socket:
    s = socket.socket(family, kind)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:  # TCP: one socket for both; UDP: one per family
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(kind == socket.SOCK_DGRAM))
    s.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", port))
    s.setblocking(False)
    return s


IP_PKTINFO = 8  # linux/in.h (not in Python's socket module)


def _udp_sockets(port: int) -> list[socket.socket]:
    """UDP on both families, each told the address a request came to: a reply must leave
    from that address (the VIP on lo), not the one the route back would pick."""
    s4 = _listen(port, socket.SOCK_DGRAM, socket.AF_INET)
    s4.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
    s6 = _listen(port, socket.SOCK_DGRAM, socket.AF_INET6)
    s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
    return [s4, s6]


def _udp_answer(usock: socket.socket, name: bytes) -> None:
    data, anc, _flags, addr = usock.recvmsg(2048, 256)
    cmsgs = []
    for level, kind, info in anc:
        if level == socket.IPPROTO_IP and kind == IP_PKTINFO:  # ifindex, spec_dst, addr
            cmsgs.append((level, kind, b"\0" * 4 + info[8:12] + b"\0" * 4))
        elif level == socket.IPPROTO_IPV6 and kind == socket.IPV6_PKTINFO:  # addr, ifindex
            cmsgs.append((level, kind, info[:16] + b"\0" * 4))
    usock.sendmsg([name + b" " + data], cmsgs, 0, addr)


def serve(
    name: str, port: int, reply: str, backlog: int = 4096, udp_port: int | None = None
) -> None:
    sel = selectors.DefaultSelector()
    lsock = _listen(port, socket.SOCK_STREAM)
    lsock.listen(backlog)
    sel.register(lsock, selectors.EVENT_READ, "listen")
    for usock in _udp_sockets(udp_port) if udp_port is not None else []:
        sel.register(usock, selectors.EVENT_READ, "udp")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))

    def drop(c: _Conn) -> None:
        sel.unregister(c.sock)
        c.sock.close()

    while True:
        for key, events in sel.select():
            if key.data == "listen":
                try:
                    conn, addr = lsock.accept()
                except OSError:
                    continue
                conn.setblocking(False)
                peer = addr[0].removeprefix("::ffff:")
                answer = (name if reply == "name" else peer).encode() + b"\n"
                sel.register(conn, selectors.EVENT_READ, _Conn(conn, answer))
                continue
            if key.data == "udp":
                assert isinstance(key.fileobj, socket.socket)  # registered: a UDP socket
                with contextlib.suppress(OSError):
                    _udp_answer(key.fileobj, name.encode())
                continue
            c: _Conn = key.data
            if events & selectors.EVENT_READ:
                try:
                    data = c.sock.recv(4096)
                except OSError:
                    data = b""
                if not data:
                    drop(c)
                    continue
                c.inbuf += data
                _replies(c)
            if c.out:
                try:
                    sent = c.sock.send(c.out)
                except BlockingIOError:
                    sent = 0
                except OSError:
                    drop(c)
                    continue
                del c.out[:sent]
            want = selectors.EVENT_READ | (selectors.EVENT_WRITE if c.out else 0)
            if key.events != want:
                sel.modify(c.sock, want, c)


def main() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # thousands of held connections
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--name", required=True)
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--reply", choices=("name", "peer"), default="name")
    ap.add_argument("--udp-port", type=int, default=None, help="also answer UDP here")
    args = ap.parse_args()
    serve(args.name, args.port, args.reply, udp_port=args.udp_port)


if __name__ == "__main__":
    main()
