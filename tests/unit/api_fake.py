"""A fake AgentControl keeping real state, for the API and CLI tests.

Next hops have states and pinned counts a test can change while a client watches (the
drain --wait tests lower them from another thread); flows can be filtered, paged and purged;
events go to every watcher through a queue per watcher.
"""

from __future__ import annotations

import ipaddress
import queue
import threading
import time
from dataclasses import dataclass

from dfagent.api.control import InvalidArgument, NotFound
from dfagent.core.model import (
    NEXTHOP_STATES,
    AgentStatus,
    DrainInfo,
    Event,
    FlowFilter,
    FlowInfo,
    FlowPage,
    NexthopInfo,
)


@dataclass
class FakeNexthop:
    name: str
    address: str
    ifname: str
    state: str = "active"
    pinned: int | None = 0
    mark: int = 0
    deadline_at: float | None = None


class EventStream:
    """The iterator watch_events returns: blocking, with the thread-safe close() it needs."""

    _END = object()

    def __init__(self, owner: FakeAgent) -> None:
        self.q: queue.Queue[object] = queue.Queue()
        self.owner = owner
        self.closed = threading.Event()

    def __iter__(self) -> EventStream:
        return self

    def __next__(self) -> Event:
        item = self.q.get()
        if item is self._END:
            raise StopIteration
        assert isinstance(item, Event)
        return item

    def close(self) -> None:
        self.closed.set()
        self.q.put(self._END)
        self.owner.forget(self)


class FakeAgent:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.status_reads = 0  # drain_status calls: tests step the count after a read
        self.started_at = time.time() - 3725
        self.nhs = [
            FakeNexthop("s1", "10.0.1.2", "eth1", pinned=3, mark=0x100),
            FakeNexthop("s2", "10.0.2.2", "eth2", pinned=2, mark=0x200),
            FakeNexthop("s3", "2001:db8:3::2", "eth3", pinned=None, mark=0x300, state="dead"),
        ]
        self.flows = [
            FlowInfo(
                "192.0.2.10",
                "1.1.1.1",
                40000 + i,
                443 if i % 2 else 80,
                "tcp",
                "s1" if i < 3 else "s2",
                "ESTABLISHED",
                float(i),
            )
            for i in range(5)
        ]
        self.watchers: list[EventStream] = []
        self.resyncs = 0
        self.calls: list[tuple[object, ...]] = []
        self.fail_with: Exception | None = None

    # --- helpers for tests ---
    def nh(self, key: str) -> FakeNexthop:
        for n in self.nhs:
            if key in (n.name, n.address):
                return n
        raise NotFound(f"no next hop {key!r}")

    def set_pinned(self, name: str, pinned: int) -> None:
        with self.lock:
            self.nh(name).pinned = pinned

    def emit(self, ev: Event) -> None:
        for w in list(self.watchers):
            w.q.put(ev)

    def forget(self, stream: EventStream) -> None:
        with self.lock:
            if stream in self.watchers:
                self.watchers.remove(stream)

    def stop(self) -> None:
        for w in list(self.watchers):
            w.q.put(EventStream._END)

    def _check(self) -> None:
        if self.fail_with is not None:
            raise self.fail_with

    # --- AgentControl ---
    def status(self) -> AgentStatus:
        self._check()
        counts = {s: 0 for s in NEXTHOP_STATES}
        for n in self.nhs:
            counts[n.state] += 1
        return AgentStatus(
            version="0.1.0",
            mode="kernel",
            pid=4242,
            started_at=self.started_at,
            vips=("1.1.1.1/32", "2001:db8::1/128"),
            nexthops=counts,
            pinned=sum(n.pinned or 0 for n in self.nhs),
            repairs=2,
            config_file="/etc/dfagent/dfagent.yaml",
            healthy=False,
            problems=("s3: neighbour 2001:db8:3::2 failed",),
        )

    def list_nexthops(self) -> list[NexthopInfo]:
        self._check()
        with self.lock:
            return [
                NexthopInfo(
                    n.name,
                    n.address,
                    n.ifname,
                    6 if ":" in n.address else 4,
                    n.state,
                    n.pinned,
                    n.mark,
                    n.mark,
                )
                for n in self.nhs
            ]

    def _match(self, f: FlowInfo, flt: FlowFilter) -> bool:
        if flt.nexthop is not None and f.nexthop != self.nh(flt.nexthop).name:
            return False
        if flt.vip is not None:
            try:
                net = ipaddress.ip_network(flt.vip)
            except ValueError:
                raise InvalidArgument(f"--vip: {flt.vip!r} is not an address or prefix") from None
            if ipaddress.ip_address(f.dst) not in net:
                return False
        return all(
            getattr(flt, k) is None or getattr(flt, k) == getattr(f, k)
            for k in ("src", "dst", "sport", "dport")
        )

    def list_flows(self, filter: FlowFilter, limit: int, page_token: str) -> FlowPage:
        self.calls.append(("list_flows", filter, limit, page_token))
        try:
            start = int(page_token or 0)
        except ValueError:
            raise InvalidArgument(f"bad page token {page_token!r}") from None
        with self.lock:
            found = [f for f in self.flows if self._match(f, filter)]
        page = found[start : start + limit]
        more = start + limit < len(found)
        return FlowPage(tuple(page), str(start + limit) if more else "")

    def purge_flows(self, filter: FlowFilter) -> int:
        with self.lock:
            keep = [f for f in self.flows if not self._match(f, filter)]
            n = len(self.flows) - len(keep)
            self.flows = keep
        return n

    def _info(self, n: FakeNexthop) -> DrainInfo:
        return DrainInfo(n.name, n.state, n.pinned, n.deadline_at)

    def drain(self, nexthop: str, deadline_s: float | None) -> DrainInfo:
        if deadline_s is not None and deadline_s <= 0:
            raise InvalidArgument("deadline must be more than 0 seconds")
        with self.lock:
            n = self.nh(nexthop)
            if n.state == "active":
                n.state = "draining"
            n.deadline_at = None if deadline_s is None else time.time() + deadline_s
            info = self._info(n)
        self.emit(Event(time.time(), "drain", n.name, f"{n.pinned} pinned"))
        return info

    def undrain(self, nexthop: str) -> DrainInfo:
        with self.lock:
            n = self.nh(nexthop)
            n.state, n.deadline_at = "active", None
            return self._info(n)

    def drain_status(self, nexthop: str) -> DrainInfo:
        with self.lock:
            self.status_reads += 1
            n = self.nh(nexthop)
            if n.state == "draining" and n.pinned == 0:
                n.state = "drained"
            return self._info(n)

    def watch_events(self) -> EventStream:
        stream = EventStream(self)
        with self.lock:
            self.watchers.append(stream)
        return stream

    def resync(self) -> None:
        self._check()
        self.resyncs += 1
