"""Receive GRE-mirrored SYNs from switches and hand `SynEvent`s to the rest of the agent.

    rx = MirrorReceiver(sources=["10.0.0.1", "2001:db8::1"], queue_size=65536)
    rx.open()                       # raw sockets (needs CAP_NET_RAW)
    threading.Thread(target=rx.run, args=(stop,)).start()
    for ev in rx.poll_batch(max_events=1024, timeout=0.5): ...
    for read_at, evs in rx.poll_stamped(1024, 0.5): ...   # with each chunk's read time
    rx.counters                     # {"packets": …, "syn": …, "drop:not-allowed": …, …}
    rx.close()

Or, without a thread: `rx.drain()` reads whatever is waiting (non-blocking) and returns the
SynEvents, for a caller that polls `rx.filenos()` in its own loop.

Sockets: `socket(AF_INET, SOCK_RAW, IPPROTO_GRE)` returns the whole outer IPv4 packet, so the
mirror's address is read from the header; an AF_INET6 raw socket returns the packet after the
IPv6 header (and its extension headers), so the mirror's address comes from `recvfrom`. The
receive buffer is raised with SO_RCVBUFFORCE (root) or SO_RCVBUF, up to `rcvbuf` bytes; at most
RECV_SIZE bytes of each packet are read (headers are all the decoder needs; a longer mirror is
decoded as a truncated one).

Allow-list: packets whose outer source is not in `sources` are dropped before decoding and
counted as "drop:not-allowed" (`sources=None` accepts any source).

Queue: bounded (`queue_size` events). When it is full the policy is "newest" (drop the
arriving events: the default, it never touches what the consumer is about to read) or
"oldest" (drop from the head); either way "drop:queue-full" counts them.

Second chance (`synack=True`): a packet the SYN decoder skips as not-syn is decoded again
for a SYN-ACK (pure Python; only such packets pay for it), queued as a `SynAckEvent` and
counted "synack"; the agent pins the client's flow to the session's next hop.

Counters (all ints, in `counters`: the agent's metrics dict when it passes one): packets,
bytes, syn, synack, skip:<reason>, error:<layer>: <reason>, drop:not-allowed, drop:queue-full,
socket-errors, error:internal. Nothing a packet contains can raise out of `drain`/`run`:
decode errors are counted, and any other exception too (as "error:internal", which would be
a bug in dfagent.wire).
"""

from __future__ import annotations

import errno
import ipaddress
import os
import select
import socket
import threading
import time
from collections import deque
from collections.abc import Iterable
from typing import Any, Literal, Protocol

from dfagent.wire import (
    SKIP_NOT_SYN,
    DecodeError,
    SynAckEvent,
    SynEvent,
    decode_gre,
    decode_mirror,
    decode_synack,
    decode_synack_gre,
)

RECV_SIZE = 2048
DEFAULT_RCVBUF = 32 << 20
DEFAULT_QUEUE = 65536
DEFAULT_BATCH = 512
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)

DropPolicy = Literal["newest", "oldest"]


class RawSocket(Protocol):
    """What the drain loops use of a raw socket (unit tests feed them fakes)."""

    def recv(self, bufsize: int, /) -> bytes: ...
    def recvfrom(self, bufsize: int, /) -> tuple[bytes, Any]: ...
    def fileno(self) -> int: ...
    def close(self) -> None: ...


def _synack(decoder: Any, args: tuple[Any, ...], append: Any) -> str:
    """Decode a packet the SYN decoder skipped as not-syn with a SYN-ACK decoder; append the
    SynAckEvent, and return the counter it falls under. Never raises for packet content."""
    try:
        r = decoder(*args)
    except DecodeError as err:  # the SYN decoder read it: only a bug gets here
        return "error:" + err.label
    except Exception:
        return "error:internal"
    if r.__class__ is SynAckEvent:
        append(r)
        return "synack"
    return "skip:" + r.reason


def _packed(addr: str) -> bytes:
    return ipaddress.ip_address(addr.split("%", 1)[0]).packed


class MirrorReceiver:
    def __init__(
        self,
        sources: Iterable[str] | None,
        queue_size: int = DEFAULT_QUEUE,
        *,
        families: Iterable[int] = (4, 6),
        rcvbuf: int = DEFAULT_RCVBUF,
        batch: int = DEFAULT_BATCH,
        drop: DropPolicy = "newest",
        counters: dict[str, int] | None = None,
        synack: bool = False,
    ) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        if drop not in ("newest", "oldest"):
            raise ValueError("drop must be 'newest' or 'oldest'")
        self.families = tuple(sorted(set(families)))
        if not set(self.families) <= {4, 6} or not self.families:
            raise ValueError("families must be a non-empty subset of (4, 6)")
        self.allowed: frozenset[bytes] | None = None
        self._v6_text: dict[str, bytes] = {}
        self.set_sources(sources)
        self.queue_size = queue_size
        self.rcvbuf = rcvbuf
        self.batch = batch
        self.drop_policy = drop
        # second chance: a packet the SYN decoder skips as not-syn is decoded again, and a
        # SYN-ACK becomes a SynAckEvent (counted "synack") instead of skip:not-syn
        self.synack = synack
        # the agent passes its metrics' dict: the receiver counts straight into it
        self.counters: dict[str, int] = counters if counters is not None else {}
        for key in ("packets", "bytes", "syn", "drop:not-allowed", "drop:queue-full"):
            self.counters.setdefault(key, 0)
        self.counters.setdefault("socket-errors", 0)
        # chunks of events as read, each with its read time (SYN → pin latency starts there)
        self._queue: deque[tuple[float, list[SynEvent]]] = deque()
        self._qlen = 0
        self._qlock = threading.Lock()
        self._ready = threading.Event()
        self.sock4: RawSocket | None = None
        self.sock6: RawSocket | None = None
        self.rcvbuf_actual: dict[int, int] = {}
        self._proc: dict[int, tuple[int, Any]] = {}  # family → (socket inode, /proc file)

    def set_sources(self, sources: Iterable[str] | None) -> None:
        """Replace the allow-list (a config reload); the receive loop picks it up at its next
        read (each read takes the current one)."""
        allowed = None if sources is None else frozenset(_packed(s) for s in sources)
        # IPv6 sources arrive as text from recvfrom: text → packed, for allowed sources only
        v6_text = {socket.inet_ntop(socket.AF_INET6, p): p for p in allowed or () if len(p) == 16}
        self._v6_text, self.allowed = v6_text, allowed

    # -- sockets ---------------------------------------------------------------------------

    def open(self) -> None:
        """Create the raw sockets. Raises PermissionError without CAP_NET_RAW."""
        try:
            if 4 in self.families:
                self.sock4 = self._raw(socket.AF_INET)
            if 6 in self.families:
                self.sock6 = self._raw(socket.AF_INET6)
        except BaseException:
            self.close()
            raise

    def _raw(self, family: int) -> socket.socket:
        s = socket.socket(family, socket.SOCK_RAW, socket.IPPROTO_GRE)
        try:
            try:
                s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, self.rcvbuf)
            except OSError:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
            s.setblocking(False)
        except BaseException:
            s.close()
            raise
        fam = 4 if family == socket.AF_INET else 6
        self.rcvbuf_actual[fam] = s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        # /proc/net/raw lists the sockets of the namespace it was opened in: open it now, in
        # the receiver's namespace, and re-read it later for the kernel's drop counter.
        try:
            f = open(f"/proc/thread-self/net/raw{'' if fam == 4 else '6'}")  # noqa: SIM115
            self._proc[fam] = (os.fstat(s.fileno()).st_ino, f)
        except OSError:
            pass
        return s

    def close(self) -> None:
        for s in (self.sock4, self.sock6):
            if s is not None:
                s.close()
        self.sock4 = self.sock6 = None
        for _inode, f in self._proc.values():
            f.close()
        self._proc.clear()

    def __enter__(self) -> MirrorReceiver:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def filenos(self) -> list[int]:
        return [s.fileno() for s in (self.sock4, self.sock6) if s is not None]

    def kernel_drops(self) -> int:
        """Packets the kernel dropped on our sockets (receive buffer full), from /proc."""
        total = 0
        for inode, f in self._proc.values():
            try:
                f.seek(0)
                for line in f.read().splitlines()[1:]:
                    cols = line.split()
                    if len(cols) > 12 and cols[9] == str(inode):
                        total += int(cols[12])
            except (OSError, ValueError):
                pass
        return total

    # -- receiving -------------------------------------------------------------------------

    def _count(self, key: str, n: int = 1) -> None:
        c = self.counters
        c[key] = c.get(key, 0) + n

    def drain(self, max_packets: int | None = None) -> list[SynEvent]:
        """Read what is waiting on the sockets (without blocking), at most `max_packets` per
        socket (default `batch`), and return the SynEvents. Never raises for packet content."""
        limit = self.batch if max_packets is None else max_packets
        events: list[SynEvent] = []
        if self.sock4 is not None:
            self._drain4(self.sock4, limit, events)
        if self.sock6 is not None:
            self._drain6(self.sock6, limit, events)
        return events

    def _drain4(self, sock: RawSocket, limit: int, events: list[SynEvent]) -> None:
        recv = sock.recv
        allowed = self.allowed
        append = events.append
        n = nbytes = syn = denied = 0
        others: dict[str, int] = {}
        try:
            while n < limit:
                try:
                    buf = recv(RECV_SIZE)
                except BlockingIOError:
                    break
                except InterruptedError:
                    continue
                except OSError as e:
                    self._socket_error(e)
                    break
                n += 1
                nbytes += len(buf)
                if allowed is not None and buf[12:16] not in allowed:
                    denied += 1
                    continue
                try:
                    r = decode_mirror(buf)
                except DecodeError as err:
                    k = "error:" + err.label
                    others[k] = others.get(k, 0) + 1
                    continue
                except Exception:  # a bug in dfagent.wire; never let it out of the loop
                    others["error:internal"] = others.get("error:internal", 0) + 1
                    continue
                if r.__class__ is SynEvent:
                    append(r)
                    syn += 1
                    continue
                if r is SKIP_NOT_SYN and self.synack:
                    k = _synack(decode_synack, (buf,), append)
                else:
                    k = "skip:" + r.reason  # type: ignore[union-attr]
                others[k] = others.get(k, 0) + 1
        finally:
            self._flush_counts(n, nbytes, syn, denied, others)

    def _drain6(self, sock: RawSocket, limit: int, events: list[SynEvent]) -> None:
        recvfrom = sock.recvfrom
        allowed = self.allowed
        v6_text = self._v6_text
        append = events.append
        mirror: bytes | None
        n = nbytes = syn = denied = 0
        others: dict[str, int] = {}
        try:
            while n < limit:
                try:
                    buf, addr = recvfrom(RECV_SIZE)
                except BlockingIOError:
                    break
                except InterruptedError:
                    continue
                except OSError as e:
                    self._socket_error(e)
                    break
                n += 1
                nbytes += len(buf)
                text = addr[0].split("%", 1)[0]
                if allowed is None:
                    mirror = socket.inet_pton(socket.AF_INET6, text)
                else:
                    mirror = v6_text.get(text)
                    if mirror is None:
                        denied += 1
                        continue
                try:
                    r = decode_gre(buf, mirror)
                except DecodeError as err:
                    k = "error:" + err.label
                    others[k] = others.get(k, 0) + 1
                    continue
                except Exception:
                    others["error:internal"] = others.get("error:internal", 0) + 1
                    continue
                if r.__class__ is SynEvent:
                    append(r)
                    syn += 1
                    continue
                if r is SKIP_NOT_SYN and self.synack:
                    k = _synack(decode_synack_gre, (buf, mirror), append)
                else:
                    k = "skip:" + r.reason  # type: ignore[union-attr]
                others[k] = others.get(k, 0) + 1
        finally:
            self._flush_counts(n, nbytes, syn, denied, others)

    def _socket_error(self, e: OSError) -> None:
        self._count("socket-errors")
        if e.errno not in (errno.ENOBUFS, errno.ENOMEM, errno.EAGAIN):
            self._count(f"socket-error:{errno.errorcode.get(e.errno or 0, e.errno)}")

    def _flush_counts(
        self, n: int, nbytes: int, syn: int, denied: int, others: dict[str, int]
    ) -> None:
        c = self.counters
        c["packets"] += n
        c["bytes"] += nbytes
        c["syn"] += syn
        c["drop:not-allowed"] += denied
        for k, v in others.items():
            c[k] = c.get(k, 0) + v

    # -- the queue to the agent ------------------------------------------------------------

    def enqueue(self, events: list[SynEvent], received: float | None = None) -> None:
        """Put events on the bounded queue, applying the drop policy; ``received``: when they
        were read (``time.monotonic()``, default now)."""
        if not events:
            return
        t = time.monotonic() if received is None else received
        q = self._queue
        with self._qlock:
            room = self.queue_size - self._qlen
            excess = len(events) - room
            if excess > 0:
                self.counters["drop:queue-full"] += excess
                if self.drop_policy == "newest":
                    events = events[:room] if room > 0 else []
                elif excess >= self._qlen:
                    q.clear()
                    self._qlen = 0
                    events = events[-self.queue_size :]
                else:
                    self._drop_head(excess)
            if events:
                q.append((t, events))
                self._qlen += len(events)
        self._ready.set()

    def _drop_head(self, n: int) -> None:
        q = self._queue
        while n > 0:
            t, head = q[0]
            if len(head) <= n:
                q.popleft()
                n -= len(head)
                self._qlen -= len(head)
            else:
                q[0] = (t, head[n:])
                self._qlen -= n
                n = 0

    def poll_stamped(
        self, max_events: int = 1024, timeout: float = 0.0
    ) -> list[tuple[float, list[SynEvent]]]:
        """Take up to ``max_events`` events off the queue as (read time, events) chunks,
        waiting up to ``timeout`` seconds for the first one. Safe to call from another thread
        than ``run``."""
        if not self._qlen and timeout > 0:
            self._ready.clear()
            if not self._qlen:
                self._ready.wait(timeout)
        q = self._queue
        out: list[tuple[float, list[SynEvent]]] = []
        n = 0
        with self._qlock:
            while q and n < max_events:
                t, evs = q[0]
                take = max_events - n
                if len(evs) <= take:
                    q.popleft()
                    out.append((t, evs))
                    n += len(evs)
                else:
                    out.append((t, evs[:take]))
                    q[0] = (t, evs[take:])
                    n += take
            self._qlen -= n
        return out

    def poll_batch(self, max_events: int = 1024, timeout: float = 0.0) -> list[SynEvent]:
        """:meth:`poll_stamped` without the read times."""
        return [ev for _, evs in self.poll_stamped(max_events, timeout) for ev in evs]

    def qsize(self) -> int:
        return self._qlen

    def run(self, stop: threading.Event, poll_interval: float = 0.2) -> None:
        """Receive until `stop` is set: wait for packets, drain in batches, enqueue."""
        if self.sock4 is None and self.sock6 is None:
            self.open()
        poller = select.poll()
        for fd in self.filenos():
            poller.register(fd, select.POLLIN)
        timeout_ms = int(poll_interval * 1000)
        while not stop.is_set():
            try:
                ready = poller.poll(timeout_ms)
            except InterruptedError:
                continue
            if ready:
                if self.sock4 is None and self.sock6 is None:
                    return  # closed under us
                t = time.monotonic()
                self.enqueue(self.drain(), t)
