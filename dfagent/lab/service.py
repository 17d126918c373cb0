"""A tiny TCP service for labs: answers every request line with its name (or the client's
address), on long-lived connections, IPv4 and IPv6 on one socket.

Run as `python -m dfagent.lab.service --name s1 --port 8080 [--reply name|peer]`. One
thread, `selectors`, so ten thousand idle connections cost nothing.
"""

from __future__ import annotations

import argparse
import resource
import selectors
import signal
import socket
import sys


def serve(name: str, port: int, reply: str, backlog: int = 4096) -> None:
    sel = selectors.DefaultSelector()
    lsock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    lsock.bind(("::", port))
    lsock.listen(backlog)
    lsock.setblocking(False)
    sel.register(lsock, selectors.EVENT_READ, None)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        for key, _ in sel.select():
            if key.data is None:
                try:
                    conn, addr = lsock.accept()
                except OSError:
                    continue
                conn.setblocking(False)
                peer = addr[0].removeprefix("::ffff:")
                answer = (name if reply == "name" else peer).encode() + b"\n"
                sel.register(conn, selectors.EVENT_READ, answer)
                continue
            conn = key.fileobj  # type: ignore[assignment]
            try:
                data = conn.recv(4096)
            except OSError:
                data = b""
            if not data:
                sel.unregister(conn)
                conn.close()
                continue
            try:
                conn.send(key.data * data.count(b"\n"))
            except OSError:
                sel.unregister(conn)
                conn.close()


def main() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # thousands of held connections
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--name", required=True)
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--reply", choices=("name", "peer"), default="name")
    args = ap.parse_args()
    serve(args.name, args.port, args.reply)


if __name__ == "__main__":
    main()
