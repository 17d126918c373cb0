"""Hold long-lived UDP sessions to a lab service (QUIC-like: one 4-tuple each, a packet
both ways every 100 ms) and count the sessions lost while the caller changes the network.

Runs inside a client namespace, driven over stdin/stdout with one JSON object per line:
    {"cmd": "open", "addrs": ["1.1.1.1", "2001:db8::1"], "port": 443, "count": 100}
    {"cmd": "start", "interval": 0.1}   → traffic in the background until "stop"
    {"cmd": "stats"}                    → {"alive": a, "lost": l, "moved": m, "silent": s, …}
    {"cmd": "stop"}                     → stops the traffic, the final stats
    {"cmd": "quit"}
A session is lost when a reply comes from another server than the first (a QUIC server
that does not know the connection answers with a stateless reset), or when no reply came
for ``lost_after`` seconds. Lost sessions are closed and stay counted.
"""

from __future__ import annotations

import itertools
import json
import resource
import selectors
import socket
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any


@dataclass
class Session:
    sock: socket.socket
    server: str = ""
    last: float = 0.0  # monotonic time of the last good reply
    max_gap: float = 0.0


class Sessions:
    def __init__(self) -> None:
        self.alive: list[Session] = []
        self.lost_from: Counter[str] = Counter()
        self.moved = self.silent = self.rounds = self.sent = self.replies = 0
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None
        self.running = False

    def open(self, addrs: list[str], port: int, count: int, timeout: float = 3.0) -> dict:
        fresh = []
        for addr, _ in zip(itertools.cycle(addrs), range(count), strict=False):
            sock = socket.socket(
                socket.AF_INET6 if ":" in addr else socket.AF_INET, socket.SOCK_DGRAM
            )
            sock.connect((addr, port))
            sock.setblocking(False)
            fresh.append(Session(sock))
        sel = selectors.DefaultSelector()
        for i, ses in enumerate(fresh):
            ses.sock.send(b"hello")
            sel.register(ses.sock, selectors.EVENT_READ, i)
        end = time.monotonic() + timeout
        while time.monotonic() < end and any(not x.server for x in fresh):
            for key, _ in sel.select(timeout=max(0.0, end - time.monotonic())):
                ses = fresh[key.data]
                try:
                    ses.server = ses.sock.recv(2048).split(b" ", 1)[0].decode()
                    ses.last = time.monotonic()
                except OSError:
                    pass
                sel.unregister(ses.sock)
        sel.close()
        ok = [x for x in fresh if x.server]
        for x in fresh:
            if not x.server:
                x.sock.close()
        with self.lock:
            self.alive += ok
        return {"opened": len(ok), "failed": len(fresh) - len(ok), "by_server": self._by_server()}

    def _by_server(self) -> dict[str, int]:
        return dict(sorted(Counter(s.server for s in self.alive).items()))

    def _lose(self, ses: Session, moved: bool) -> None:
        ses.sock.close()
        self.alive.remove(ses)
        self.lost_from[ses.server] += 1
        if moved:
            self.moved += 1
        else:
            self.silent += 1

    def _loop(self, interval: float, lost_after: float) -> None:
        sel = selectors.DefaultSelector()
        registered: dict[socket.socket, Session] = {}
        seq = 0
        while self.running:
            t0 = time.monotonic()
            seq += 1
            with self.lock:
                for ses in list(self.alive):
                    if ses.sock not in registered:
                        registered[ses.sock] = ses
                        sel.register(ses.sock, selectors.EVENT_READ, ses)
                    try:
                        ses.sock.send(b"%d" % seq)
                        self.sent += 1
                    except OSError:
                        pass  # e.g. ECONNREFUSED from an earlier ICMP: silence decides
                self.rounds += 1
            while (left := interval - (time.monotonic() - t0)) > 0:
                for key, _ in sel.select(timeout=left):
                    ses = key.data
                    try:
                        data = ses.sock.recv(2048)
                    except OSError:
                        continue
                    with self.lock:
                        if ses not in self.alive:
                            continue
                        self.replies += 1
                        if data.split(b" ", 1)[0].decode() != ses.server:
                            sel.unregister(ses.sock)
                            del registered[ses.sock]
                            self._lose(ses, moved=True)
                            continue
                        now = time.monotonic()
                        ses.max_gap = max(ses.max_gap, now - ses.last)
                        ses.last = now
            now = time.monotonic()
            with self.lock:
                for ses in list(self.alive):
                    if now - ses.last > lost_after:
                        sel.unregister(ses.sock)
                        del registered[ses.sock]
                        self._lose(ses, moved=False)
        sel.close()

    def start(self, interval: float = 0.1, lost_after: float = 3.0) -> dict:
        now = time.monotonic()
        for ses in self.alive:
            ses.last = now
        self.running = True
        self.thread = threading.Thread(target=self._loop, args=(interval, lost_after), daemon=True)
        self.thread.start()
        return {"started": len(self.alive)}

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {
                "alive": len(self.alive),
                "lost": self.moved + self.silent,
                "moved": self.moved,
                "silent": self.silent,
                "lost_from": dict(sorted(self.lost_from.items())),
                "by_server": self._by_server(),
                "rounds": self.rounds,
                "sent": self.sent,
                "replies": self.replies,
                "max_gap": round(max((s.max_gap for s in self.alive), default=0.0), 3),
            }

    def stop(self) -> dict[str, Any]:
        self.running = False
        if self.thread is not None:
            self.thread.join()
        return self.stats()


def main() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    sessions = Sessions()
    for line in sys.stdin:
        req = json.loads(line)
        cmd = req.pop("cmd")
        if cmd == "quit":
            break
        print(json.dumps(getattr(sessions, cmd)(**req)), flush=True)
    sessions.stop()


if __name__ == "__main__":
    main()
