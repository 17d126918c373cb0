"""Hold many long-lived TCP connections to a lab service and check each one on demand.

Runs inside a client namespace, driven over stdin/stdout with one JSON object per line:
    {"cmd": "open", "addrs": ["1.1.1.1", "2001:db8::1"], "port": 80, "count": 1000}
    {"cmd": "check"}          → {"alive": a, "broken": b, "by_server": {…}, "broken_from": {…}}
    {"cmd": "fresh", "count": 60}  → {"answers": {"s2": 31, …}, "errors": k}; with
                                "keep": true, "group": "after" the answered ones are held
    {"cmd": "rate", "seconds": 2}  → {"rate": new connections per second, "errors": k}
    {"cmd": "traffic", "seconds": 5, "interval": 0.1}  → a check every interval: live
                                traffic while the caller changes things, then the totals
                                (broken_from: the servers of the connections it broke);
                                without "seconds" it runs until a {"cmd": "stop"} line, and
                                meanwhile {"cmd": "grow", "rate": 50, "group": "during"} opens
                                new connections at that rate (kept and checked with the rest)
                                until {"cmd": "grow_stop"}: connections born mid-change
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
    {"cmd": "churn", "rate": 20, "hold": 3, "seconds": 30, "interval": 0.1}  → while the
                                held connections carry a request every `interval`, new ones
                                open at `rate`/s, carry the same requests for `hold` seconds
                                and close (FIN); a progress line every second
                                ({"progress": 1, …}), then the totals (see `churn`)
    {"cmd": "quit"}
A connection is broken when a request on it gets a reset, no answer in time, or an answer
from a server other than the one that answered first. Broken connections are closed and
stay counted; later checks only look at the alive ones.
"""

from __future__ import annotations

import itertools
import json
import os
import resource
import select
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
    group: str = "initial"


class Lines:
    """Command lines from a file descriptor, readable without blocking between traffic
    rounds (a buffered `sys.stdin` would hide a second line already read into its buffer)."""

    def __init__(self, fd: int = 0) -> None:
        self.fd = fd
        self.buf = b""
        self.eof = False

    def get(self, timeout: float | None) -> str | None:
        """The next line; None when none came within ``timeout`` (None: wait) or at EOF."""
        while b"\n" not in self.buf and not self.eof:
            ready, _, _ = select.select([self.fd], [], [], timeout)
            if not ready:
                return None
            data = os.read(self.fd, 65536)
            self.eof = not data
            self.buf += data
        if b"\n" not in self.buf:
            return None
        line, _, self.buf = self.buf.partition(b"\n")
        return line.decode()


class Opener:
    """New connections at a steady rate, non-blocking (a slow handshake, e.g. a retransmitted
    SYN, does not delay the next one); each asks once and is kept with the server that answered.
    Driven by `poll` from the traffic loop, so its connections join the traffic at once."""

    def __init__(self, addrs: list[str], port: int, rate: float, group: str, timeout: float = 5):
        self.addrs, self.port, self.rate, self.group = itertools.cycle(addrs), port, rate, group
        self.timeout = timeout
        self.sel = selectors.DefaultSelector()
        self.started: dict[socket.socket, float] = {}
        self.t0 = time.monotonic()
        self.attempted = self.failed = 0
        self.failed_how: Counter[str] = Counter()  # handshake | reset | timeout
        self.stopped = False

    def stop(self) -> None:
        self.stopped = True

    @property
    def busy(self) -> bool:
        return bool(self.started) or not self.stopped

    def poll(self, timeout: float) -> list[Conn]:
        """Start the connections due, and work on the pending ones for up to ``timeout``."""
        done: list[Conn] = []
        end = time.monotonic() + timeout
        while True:
            now = time.monotonic()
            while not self.stopped and self.attempted < int((now - self.t0) * self.rate) + 1:
                addr = next(self.addrs)
                s = socket.socket(_family(addr), socket.SOCK_STREAM)
                s.setblocking(False)
                s.connect_ex((addr, self.port))
                self.started[s] = now
                self.sel.register(s, selectors.EVENT_WRITE, Conn(s, group=self.group))
                self.attempted += 1
            next_start = self.t0 + (self.attempted) / self.rate if not self.stopped else end
            wait = max(0.0, min(end, next_start) - now)
            for key, ev in self.sel.select(timeout=wait) if self.started else []:
                self._event(key.data, ev, done)
            if not self.started and wait > 0:
                time.sleep(wait)
            for s in [s for s, t in self.started.items() if time.monotonic() - t > self.timeout]:
                self._end(s, None, done, "timeout")
            if time.monotonic() >= end:
                return done

    def _event(self, c: Conn, ev: int, done: list[Conn]) -> None:
        s = c.sock
        if ev & selectors.EVENT_WRITE:
            if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                return self._end(s, None, done, "handshake")
            try:
                s.send(REQUEST)
            except OSError:
                return self._end(s, None, done, "reset")
            self.sel.modify(s, selectors.EVENT_READ, c)
            return None
        try:
            data = s.recv(4096)
        except OSError:
            data = b""
        if not data:
            return self._end(s, None, done, "reset")
        c.buf += data
        if c.buf.endswith(b"\n"):
            c.server, c.buf = c.buf.decode(errors="replace").strip(), b""
            self._end(s, c, done)
        return None

    def _end(self, s: socket.socket, kept: Conn | None, done: list[Conn], how: str = "") -> None:
        del self.started[s]
        self.sel.unregister(s)
        if kept is None:
            self.failed += 1
            self.failed_how[how] += 1
            s.close()
        else:
            done.append(kept)

    def close(self) -> None:
        for s in list(self.started):
            self._end(s, None, [], "unfinished")
        self.sel.close()


@dataclass
class Live:
    """A connection in `churn`'s loop: ``end`` None = held for the whole run."""

    conn: Conn
    end: float | None
    started: float
    next_send: float = 0.0
    sent: float | None = None  # when the pending request went out
    connected: bool = False


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


def _round(conns: list[Conn], ep: select.epoll, timeout: float) -> dict[int, str | None]:
    """As `_gather`, on sockets that stay registered in ``ep`` (level-triggered, EPOLLIN):
    a connection that failed is None, one that did not answer in time is missing."""
    index = {c.sock.fileno(): i for i, c in enumerate(conns)}
    result: dict[int, str | None] = {}
    pending = set()
    for fd, i in index.items():
        c = conns[i]
        c.buf = b""
        try:
            c.sock.send(REQUEST)
            pending.add(fd)
        except OSError:
            result[i] = None
    deadline = time.monotonic() + timeout
    while pending and (left := deadline - time.monotonic()) > 0:
        for fd, _ in ep.poll(left):
            if fd not in pending:
                continue
            c = conns[index[fd]]
            try:
                data = c.sock.recv(65536)
            except OSError:
                data = b""
            if not data:
                result[index[fd]] = None
                pending.discard(fd)
                continue
            c.buf += data
            if c.buf.endswith(b"\n"):
                result[index[fd]] = c.buf.decode(errors="replace").strip()
                pending.discard(fd)
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
    def __init__(self, lines: Lines | None = None) -> None:
        self.alive: list[Conn] = []
        self.broken = 0
        self.broken_from: Counter[str] = Counter()
        self.broken_by_group: Counter[str] = Counter()
        self.broken_how: Counter[str] = Counter()  # reset | timeout | moved (another server)
        self.opened = 0
        self.target: tuple[list[str], int] = ([], 0)
        self.lines = lines  # the command stream, for `traffic` without a duration

    def open(
        self, addrs: list[str], port: int, count: int, group: str = "initial"
    ) -> dict[str, Any]:
        self.target = (addrs, port)
        conns: list[Conn] = []
        failed = 0
        for start in range(0, count, 500):  # batches keep the listen backlogs happy
            batch = _connect_many(addrs, port, min(500, count - start), timeout=5)
            failed += min(500, count - start) - len(batch)
            answers = _ask_all(batch, timeout=5)
            for i, c in enumerate(batch):
                if answers[i]:
                    c.server, c.group = str(answers[i]), group
                    conns.append(c)
                else:
                    failed += 1
                    c.sock.close()
        self.alive += conns
        self.opened += len(conns)
        return {"opened": len(conns), "failed": failed, "by_server": self._by_server()}

    def _by_server(self) -> dict[str, int]:
        return dict(sorted(Counter(c.server for c in self.alive).items()))

    def _by_group(self) -> dict[str, int]:
        return dict(sorted(Counter(c.group for c in self.alive).items()))

    def check(self, timeout: float = 3.0, ep: select.epoll | None = None) -> dict[str, Any]:
        """One request on every alive connection (``ep``: traffic's epoll, every alive
        socket already registered), and judge the answers."""
        answers = _gather(self.alive, timeout) if ep is None else _round(self.alive, ep, timeout)
        still, broken_now = [], Counter[str]()
        for i, c in enumerate(self.alive):
            if answers.get(i, "") == c.server:
                still.append(c)
            else:
                how = "timeout" if i not in answers else "reset" if answers[i] is None else "moved"
                self.broken_how[how] += 1
                broken_now[c.server] += 1
                self.broken_by_group[c.group] += 1
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
            "by_group": self._by_group(),
            "broken_by_group": dict(sorted(self.broken_by_group.items())),
            "broken_from_total": dict(sorted(self.broken_from.items())),
            "broken_how": dict(sorted(self.broken_how.items())),
        }

    def traffic(self, seconds: float | None = None, interval: float = 0.1) -> dict[str, Any]:
        """A request on every live connection every ``interval`` seconds for ``seconds`` (or
        until a ``stop`` line): a connection moved for even one round trip is caught (reset,
        silence, or another server), not only those still moved at the end. A ``grow`` line
        starts opening connections at a rate (`Opener`), ``grow_stop`` ends it; each joins
        the traffic as soon as it has answered once."""
        if seconds is None and self.lines is None:
            raise ValueError("traffic without seconds needs the command stream")
        before, from_before = self.broken, Counter(self.broken_from)
        rounds = 0
        t_start = time.monotonic()
        end = t_start + seconds if seconds is not None else float("inf")
        opener: Opener | None = None
        grown: Counter[str] = Counter()
        stop = False
        # one registration per socket for the whole traffic: two epoll_ctl calls per request
        # cost more than the request itself (1,000s of connections every 100 ms)
        ep = select.epoll()
        for c in self.alive:
            ep.register(c.sock.fileno(), select.EPOLLIN)
        while time.monotonic() < end and not stop:
            t0 = time.monotonic()
            self.check(timeout=max(interval * 10, 1.0), ep=ep)
            rounds += 1
            gap = max(0.0, interval - (time.monotonic() - t0))
            if opener is not None and opener.busy:
                born = opener.poll(gap)
                for c in born:
                    ep.register(c.sock.fileno(), select.EPOLLIN)
                self.alive += born
                self.opened += len(born)
                grown.update(c.server for c in born)
                gap = 0.0
            line = None
            if self.lines is None:
                time.sleep(gap)
            else:
                line = self.lines.get(gap)
            if line:
                req = json.loads(line)
                if req["cmd"] == "grow":
                    addrs, port = self.target
                    opener = Opener(addrs, port, float(req["rate"]), str(req["group"]))
                elif req["cmd"] == "grow_stop" and opener is not None:
                    opener.stop()
                elif req["cmd"] in ("stop", "quit"):
                    stop = True
        ep.close()
        out = {"rounds": rounds, "seconds": round(time.monotonic() - t_start, 2),
               "broken_now": self.broken - before, "alive": len(self.alive),
               "broken": self.broken, "by_server": self._by_server(),
               "by_group": self._by_group(),
               "broken_by_group": dict(sorted(self.broken_by_group.items())),
               "broken_from": dict(sorted((self.broken_from - from_before).items())),
               "broken_from_total": dict(sorted(self.broken_from.items())),
               "broken_how": dict(sorted(self.broken_how.items()))}  # fmt: skip
        if opener is not None:
            opener.close()  # still connecting at the end: failed
            out["grown"] = {"attempted": opener.attempted, "failed": opener.failed,
                            "failed_how": dict(opener.failed_how),
                            "by_server": dict(sorted(grown.items()))}  # fmt: skip
        return out

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

    def fresh(self, count: int, keep: bool = False, group: str = "after") -> dict[str, Any]:
        addrs, port = self.target
        conns = _connect_many(addrs, port, count, timeout=5)
        answers = _ask_all(conns, timeout=3)
        for i, c in enumerate(conns):
            if keep and answers[i]:
                c.server, c.group = str(answers[i]), group
                self.alive.append(c)
                self.opened += 1
            else:
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

    def churn(
        self,
        rate: float,
        hold: float,
        seconds: float,
        interval: float = 0.1,
        timeout: float = 2.0,
        progress: bool = True,
    ) -> dict[str, Any]:
        """Steady churn beside the held connections, all in one non-blocking loop.

        New connections to the held ones' target open at ``rate`` per second; each that
        connects and answers within ``timeout`` is *established* (its answer names its
        server), carries a request every ``interval`` for ``hold`` seconds, then closes (FIN).
        The held connections carry the same requests all along. Broken = an established
        connection (held or new) reset, silent for ``timeout``, or answered by another server;
        a new one that never got its first answer is a failed open. With ``progress``, a line
        of the totals so far every second."""
        addrs, port = self.target
        sel = selectors.DefaultSelector()
        t0 = time.monotonic()
        live: dict[socket.socket, Live] = {}
        for c in self.alive:
            c.buf = b""  # the last check's answer is still there
            live[c.sock] = Live(c, None, t0, next_send=t0, connected=True)
            sel.register(c.sock, selectors.EVENT_READ)
        tally = Counter[str]()  # made, open_failed, closed, broken_held, broken_new
        cycle = itertools.cycle(addrs)
        next_report = t0 + 1.0

        why = Counter[str]()  # broken by: reset, timeout, another server
        breaks: list[dict[str, Any]] = []  # the first 100, for a look at when and which

        def drop(lv: Live, outcome: str, reason: str = "") -> None:
            if outcome.startswith("broken") and len(breaks) < 100:
                now = time.monotonic()
                breaks.append({"t": round(now - t0, 2), "age": round(now - lv.started, 2),
                               "kind": outcome[7:], "why": reason, "server": lv.conn.server,
                               "flow": list(lv.conn.sock.getsockname()[:2])})  # fmt: skip
            sel.unregister(lv.conn.sock)
            lv.conn.sock.close()
            del live[lv.conn.sock]
            tally[outcome] += 1
            if outcome.startswith("broken"):
                self.broken_from[lv.conn.server] += 1
                why[reason] += 1

        def totals() -> dict[str, Any]:
            held = sum(1 for lv in live.values() if lv.end is None)
            return {"t": round(time.monotonic() - t0, 2), "made": tally["made"],
                    "open_failed": tally["open_failed"], "closed": tally["closed"],
                    "broken_held": tally["broken_held"], "broken_new": tally["broken_new"],
                    "held_alive": held, "new_open": len(live) - held,
                    "broken_by": dict(why)}  # fmt: skip

        while True:
            now = time.monotonic()
            if now - t0 < seconds and tally["attempted"] < int((now - t0) * rate) + 1:
                addr = next(cycle)
                s = socket.socket(_family(addr), socket.SOCK_STREAM)
                s.setblocking(False)
                s.connect_ex((addr, port))
                live[s] = Live(Conn(s), now + hold, now)
                sel.register(s, selectors.EVENT_WRITE)
                tally["attempted"] += 1
                continue
            if now - t0 >= seconds:
                break
            for key, _ in sel.select(timeout=0.005):
                fo = key.fileobj
                assert isinstance(fo, socket.socket)  # only sockets are registered
                lv = live.get(fo)
                if lv is None:
                    continue
                if not lv.connected:  # writable: the handshake ended
                    if lv.conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                        drop(lv, "open_failed")
                        continue
                    lv.connected = True
                    sel.modify(lv.conn.sock, selectors.EVENT_READ)
                    lv.next_send = time.monotonic()
                    continue
                try:
                    data = lv.conn.sock.recv(4096)
                except OSError:
                    data = b""
                kind = "broken_held" if lv.end is None else "broken_new"
                if not data:  # reset or closed by the server
                    drop(lv, kind if lv.conn.server else "open_failed", "reset")
                    continue
                lv.conn.buf += data
                if not lv.conn.buf.endswith(b"\n"):
                    continue
                answer = lv.conn.buf.decode(errors="replace").strip()
                lv.conn.buf, lv.sent = b"", None
                if not lv.conn.server:
                    lv.conn.server = answer
                    tally["made"] += 1
                elif answer != lv.conn.server:
                    drop(lv, kind, "other server")
            now = time.monotonic()
            for lv in list(live.values()):
                if lv.sent is not None:
                    if now - lv.sent > timeout:
                        drop(lv, ("broken_held" if lv.end is None else "broken_new")
                             if lv.conn.server else "open_failed", "timeout")  # fmt: skip
                elif not lv.connected:
                    if now - lv.started > timeout:
                        drop(lv, "open_failed")
                elif lv.end is not None and lv.conn.server and now >= lv.end:
                    drop(lv, "closed")  # a normal end: FIN
                elif now >= lv.next_send:
                    try:
                        lv.conn.sock.send(REQUEST)
                        lv.sent, lv.next_send = now, now + interval
                    except OSError:
                        drop(lv, ("broken_held" if lv.end is None else "broken_new")
                             if lv.conn.server else "open_failed", "reset")  # fmt: skip
            if progress and now >= next_report:
                next_report += 1.0
                print(json.dumps({"progress": 1, **totals()}), flush=True)
        # the new connections still open end normally; the held ones stay held
        for lv in [lv for lv in live.values() if lv.end is not None]:
            drop(lv, "closed" if lv.conn.server else "open_failed")
        sel.close()
        self.alive = [lv.conn for lv in live.values()]
        self.broken += tally["broken_held"]
        return {**totals(), "attempted": tally["attempted"], "breaks": breaks}

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
    lines = Lines(sys.stdin.fileno())
    holder = Holder(lines)
    while (line := lines.get(None)) is not None:
        if not line.strip():
            continue
        req = json.loads(line)
        cmd = req.pop("cmd")
        if cmd == "quit":
            break
        reply = getattr(holder, cmd)(**req)
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
