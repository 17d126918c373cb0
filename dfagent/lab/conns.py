"""Hold many long-lived TCP connections to a lab service and check each one on demand.

Runs inside a client namespace, driven over stdin/stdout with one JSON object per line:
    {"cmd": "open", "addrs": ["1.1.1.1", "2001:db8::1"], "port": 80, "count": 1000}
    {"cmd": "check"}          → {"alive": a, "broken": b, "by_server": {…}, "broken_from": {…}}
    {"cmd": "fresh", "count": 60}  → {"answers": {"s2": 31, …}, "errors": k}
    {"cmd": "rate", "seconds": 2}  → {"rate": new connections per second, "errors": k}
    {"cmd": "traffic", "seconds": 5, "interval": 0.1}  → a check every interval: live
                                traffic while the caller changes things, then the totals
                                (broken_from: the servers of the connections it broke)
    {"cmd": "close", "server": "s1"}  → closes the held connections to s1 (all without server)
    {"cmd": "ports"}          → {"flows": [[VIP, client port, server], …]} of the alive ones
    {"cmd": "big", "size": 20000}  → a reply of `size` bytes on every connection (larger
                                than a path MTU: path MTU discovery must work), then the totals
    {"cmd": "each", "timeout": 3}  → {"answers": [server | "reset" | "timeout", …],
                                "flows": [[local address, local port], …]}: one request on
                                every held connection, in the order opened, none dropped (for
                                tests that follow each connection, not the totals)
    {"cmd": "attempts", "rate": 20, "seconds": 10, "timeout": 3}  → new connections at a
                                steady rate (connect, one request, close), each given
                                `timeout`: {"attempted", "ok", "failed", "slow"} (slow: took
                                over 0.9 s, i.e. needed a SYN retransmission)
    {"cmd": "quit"}
A connection is broken when a request on it gets a reset, no answer in time, or an answer
from a server other than the one that answered first. Broken connections are closed and
stay counted; later checks only look at the alive ones.
"""

from __future__ import annotations

import itertools
import json
import resource
import selectors
import socket
import struct
import sys
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

REQUEST = b"who\n"


@dataclass
class Conn:
    sock: socket.socket
    server: str = ""
    buf: bytes = b""


def _family(addr: str) -> int:
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def _ask_all(conns: list[Conn], timeout: float, request: bytes = REQUEST) -> dict[int, str | None]:
    """Send one request on every connection, gather one answer line each (None: failed)."""
    result = _gather(conns, timeout, request)
    return {i: result.get(i) for i in range(len(conns))}


def _gather(conns: list[Conn], timeout: float, request: bytes = REQUEST) -> dict[int, str | None]:
    """As `_ask_all`, but a connection that failed (reset, closed) is None and one that did
    not answer in time is missing."""
    sel = selectors.DefaultSelector()
    result: dict[int, str | None] = {}
    for i, c in enumerate(conns):
        c.buf = b""
        try:
            c.sock.send(request)
            sel.register(c.sock, selectors.EVENT_READ, i)
        except OSError:
            result[i] = None
    deadline = time.monotonic() + timeout
    while len(result) < len(conns) and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=max(0.0, deadline - time.monotonic())):
            i = key.data
            c = conns[i]
            try:
                data = c.sock.recv(65536)
            except OSError:
                data = b""
            if not data:
                result[i] = None
                sel.unregister(c.sock)
                continue
            c.buf += data
            if c.buf.endswith(b"\n"):
                result[i] = c.buf.decode(errors="replace").strip()
                sel.unregister(c.sock)
    sel.close()
    return result


def _connect_many(addrs: list[str], port: int, count: int, timeout: float) -> list[Conn]:
    """Open `count` connections (spread over `addrs`) concurrently, non-blocking."""
    sel = selectors.DefaultSelector()
    pending: list[Conn] = []
    for addr, _ in zip(itertools.cycle(addrs), range(count), strict=False):
        s = socket.socket(_family(addr), socket.SOCK_STREAM)
        s.setblocking(False)
        s.connect_ex((addr, port))
        sel.register(s, selectors.EVENT_WRITE)
        pending.append(Conn(s))
    done: set[socket.socket] = set()
    deadline = time.monotonic() + timeout
    while len(done) < len(pending) and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=max(0.0, deadline - time.monotonic())):
            sel.unregister(key.fileobj)
            assert isinstance(key.fileobj, socket.socket)  # only sockets are registered
            done.add(key.fileobj)
    sel.close()
    ok = []
    for c in pending:
        if c.sock in done and c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
            ok.append(c)
        else:
            c.sock.close()
    return ok


class Holder:
    def __init__(self) -> None:
        self.alive: list[Conn] = []
        self.broken = 0
        self.broken_from: Counter[str] = Counter()
        self.opened = 0
        self.target: tuple[list[str], int] = ([], 0)

    def open(self, addrs: list[str], port: int, count: int) -> dict[str, Any]:
        self.target = (addrs, port)
        conns: list[Conn] = []
        failed = 0
        for start in range(0, count, 500):  # batches keep the listen backlogs happy
            batch = _connect_many(addrs, port, min(500, count - start), timeout=5)
            failed += min(500, count - start) - len(batch)
            answers = _ask_all(batch, timeout=5)
            for i, c in enumerate(batch):
                if answers[i]:
                    c.server = str(answers[i])
                    conns.append(c)
                else:
                    failed += 1
                    c.sock.close()
        self.alive += conns
        self.opened += len(conns)
        return {"opened": len(conns), "failed": failed, "by_server": self._by_server()}

    def _by_server(self) -> dict[str, int]:
        return dict(sorted(Counter(c.server for c in self.alive).items()))

    def check(self, timeout: float = 3.0) -> dict[str, Any]:
        answers = _ask_all(self.alive, timeout)
        still, broken_now = [], Counter[str]()
        for i, c in enumerate(self.alive):
            if answers[i] == c.server:
                still.append(c)
            else:
                broken_now[c.server] += 1
                c.sock.close()
        self.alive = still
        self.broken += sum(broken_now.values())
        self.broken_from.update(broken_now)
        return {
            "alive": len(self.alive),
            "broken": self.broken,
            "broken_now": sum(broken_now.values()),
            "by_server": self._by_server(),
            "broken_from": dict(sorted(broken_now.items())),
        }

    def traffic(self, seconds: float, interval: float = 0.1) -> dict[str, Any]:
        """A request on every live connection every ``interval`` seconds for ``seconds``:
        a connection moved for even one round trip is caught (reset, silence, or another
        server), not only those still moved at the end."""
        before, from_before = self.broken, Counter(self.broken_from)
        rounds = 0
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            t0 = time.monotonic()
            self.check(timeout=max(interval * 10, 1.0))
            rounds += 1
            time.sleep(max(0.0, interval - (time.monotonic() - t0)))
        return {"rounds": rounds, "broken_now": self.broken - before, "alive": len(self.alive),
                "broken": self.broken, "by_server": self._by_server(),
                "broken_from": dict(sorted((self.broken_from - from_before).items()))}  # fmt: skip

    def ports(self) -> dict[str, Any]:
        """Each alive connection's VIP, local port and server (for lab tools that forge
        packets about these flows, e.g. ICMP errors)."""
        flows = [[c.sock.getpeername()[0], c.sock.getsockname()[1], c.server] for c in self.alive]
        return {"flows": flows}

    def big(self, size: int, timeout: float = 5.0) -> dict[str, Any]:
        """Ask every alive connection for ``size`` bytes. A reply larger than a link's MTU
        on the way back needs path MTU discovery: the ICMP error must reach the server that
        sends. A connection whose reply does not arrive whole in time is broken (closed)."""
        want = size + 1  # the name, a space, size bytes
        answers = _ask_all(self.alive, timeout, f"big {size}\n".encode())
        still, ok, failed = [], Counter[str](), Counter[str]()
        for i, c in enumerate(self.alive):
            a = answers[i]
            if a is not None and a.startswith(c.server + " ") and len(a) == len(c.server) + want:
                ok[c.server] += 1
                still.append(c)
            else:
                failed[c.server] += 1
                c.sock.close()
        self.alive = still
        self.broken += sum(failed.values())
        self.broken_from.update(failed)
        return {"ok": dict(sorted(ok.items())), "failed": dict(sorted(failed.items())),
                "alive": len(self.alive)}  # fmt: skip

    def each(self, timeout: float = 3.0) -> dict[str, Any]:
        """One request on every held connection; what each said, in the order opened.
        Nothing is closed or counted: a test can ask again and follow each connection."""
        got = _gather(self.alive, timeout)
        answers = [
            ("reset" if got[i] is None else str(got[i])) if i in got else "timeout"
            for i in range(len(self.alive))
        ]
        flows = [list(c.sock.getsockname()[:2]) for c in self.alive]
        return {"answers": answers, "flows": flows}

    def close(self, server: str | None = None) -> dict[str, Any]:
        """Close the held connections (to one server, or all): they end normally (FIN)."""
        keep = []
        closed = 0
        for c in self.alive:
            if server is None or c.server == server:
                c.sock.close()
                closed += 1
            else:
                keep.append(c)
        self.alive = keep
        return {"closed": closed, "alive": len(self.alive), "by_server": self._by_server()}

    def fresh(self, count: int) -> dict[str, Any]:
        addrs, port = self.target
        conns = _connect_many(addrs, port, count, timeout=5)
        answers = _ask_all(conns, timeout=3)
        for c in conns:
            c.sock.close()
        got = Counter(a for a in answers.values() if a)
        return {"answers": dict(sorted(got.items())), "errors": count - sum(got.values())}

    def attempts(self, rate: float, seconds: float, timeout: float = 3.0) -> dict[str, Any]:
        """New connections to the held ones' target at ``rate`` per second, whatever happens
        to earlier ones (non-blocking: a slow handshake does not delay the next attempt).
        Each must connect and answer within ``timeout``; it is then closed."""
        addrs, port = self.target
        sel = selectors.DefaultSelector()
        started: dict[socket.socket, float] = {}
        ok = failed = slow = attempted = 0
        t0 = time.monotonic()
        cycle = itertools.cycle(addrs)

        def done(s: socket.socket, good: bool) -> None:
            nonlocal ok, failed, slow
            took = time.monotonic() - started.pop(s)
            sel.unregister(s)
            s.close()
            if good:
                ok += 1
                slow += took > 0.9
            else:
                failed += 1

        while True:
            now = time.monotonic()
            if now - t0 < seconds and attempted < int((now - t0) * rate) + 1:
                addr = next(cycle)
                s = socket.socket(_family(addr), socket.SOCK_STREAM)
                s.setblocking(False)
                s.connect_ex((addr, port))
                started[s] = now
                sel.register(s, selectors.EVENT_WRITE)
                attempted += 1
                continue
            if not started and now - t0 >= seconds:
                break
            for key, ev in sel.select(timeout=0.005):
                fo = key.fileobj
                assert isinstance(fo, socket.socket)  # only sockets are registered
                s = fo
                if ev & selectors.EVENT_WRITE:
                    if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                        done(s, False)
                        continue
                    try:
                        s.send(REQUEST)
                    except OSError:
                        done(s, False)
                        continue
                    sel.modify(s, selectors.EVENT_READ)
                else:
                    try:
                        data = s.recv(64)
                    except OSError:
                        data = b""
                    done(s, bool(data))
            for s in [s for s, t in started.items() if time.monotonic() - t > timeout]:
                done(s, False)
        sel.close()
        return {"attempted": attempted, "ok": ok, "failed": failed, "slow": slow}

    def rate(self, addrs: list[str], port: int, seconds: float) -> dict[str, Any]:
        """Sequential new connections (connect, one request, close) per second. Closed
        with RST (linger 0) so no TIME_WAIT piles up and later rounds run like earlier."""
        n = errors = 0
        end = time.monotonic() + seconds
        start = time.monotonic()
        linger = struct.pack("ii", 1, 0)
        for addr in itertools.cycle(addrs):
            if time.monotonic() >= end:
                break
            try:
                with socket.create_connection((addr, port), timeout=2) as s:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                    s.sendall(REQUEST)
                    if not s.recv(64):
                        errors += 1
                n += 1
            except OSError:
                errors += 1
        return {"rate": n / (time.monotonic() - start), "errors": errors}


def main() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    holder = Holder()
    for line in sys.stdin:
        req = json.loads(line)
        cmd = req.pop("cmd")
        if cmd == "quit":
            break
        reply = getattr(holder, cmd)(**req)
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
