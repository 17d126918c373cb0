"""What the control surfaces of both backends share: next-hop names, the event bus, drain and
undrain through the drain actuator, and the API's flow filter. A backend's control adds its
reads (status, next hops, flows) and what a drain means in its datapath (the hooks below)."""

from __future__ import annotations

import contextlib
import ipaddress
import queue
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from dfagent.agent.agent import Agent
from dfagent.api.control import InvalidArgument, NotFound
from dfagent.core.model import DrainInfo, Event, FlowFilter, FlowInfo
from dfagent.core.ports import DrainActuator


class EventBus:
    """Fan-out of agent events to WatchEvents clients (each with its own bounded queue)."""

    def __init__(self) -> None:
        self._subs: set[queue.Queue[Event | None]] = set()
        self._lock = threading.Lock()

    def publish(self, ev: Event) -> None:
        with self._lock:
            subs = list(self._subs)
        for q in subs:
            with contextlib.suppress(queue.Full):  # a slow watcher loses events, not our time
                q.put_nowait(ev)

    def subscribe(self) -> _Subscription:
        q: queue.Queue[Event | None] = queue.Queue(maxsize=1000)
        with self._lock:
            self._subs.add(q)
        return _Subscription(self, q)

    def _drop(self, q: queue.Queue[Event | None]) -> None:
        with self._lock:
            self._subs.discard(q)

    def close_all(self) -> None:
        with self._lock:
            subs, self._subs = list(self._subs), set()
        for q in subs:
            q.put(None)


class _Subscription:
    def __init__(self, bus: EventBus, q: queue.Queue[Event | None]) -> None:
        self.bus, self.q = bus, q

    def __iter__(self) -> Iterator[Event]:
        return self

    def __next__(self) -> Event:
        ev = self.q.get()
        if ev is None:
            raise StopIteration
        return ev

    def close(self) -> None:
        self.bus._drop(self.q)
        self.q.put(None)


class ControlBase:
    """Names, events, drain and undrain; subclasses give the hooks."""

    no_actuator = "no drain actuator configured (drain.actuator: none)"
    dp: Any  # the backend's datapath: its records are keyed by next hop

    def __init__(
        self,
        agent: Agent,
        names: Mapping[str, Sequence[str]],
        actuator: DrainActuator | None,
        config_file: str,
    ) -> None:
        self.agent = agent
        self.names = {n: tuple(a) for n, a in names.items()}
        self.actuator = actuator
        self.config_file = config_file
        self.bus = EventBus()
        self.drains: dict[str, Any] = {}  # loop thread only
        agent.on_pass.append(self._after_pass)

    # ── hooks ───────────────────────────────────────────────────────────────────
    def _gateways(self) -> Iterable[str]:
        """Next-hop addresses the datapath knows (a next hop may be named by one)."""
        return (nh.gateway for nh in self.dp.records)

    def _drain_started(self, name: str, addrs: tuple[str, ...], deadline: float | None) -> None:
        raise NotImplementedError

    def _drain_ended(self, name: str, addrs: tuple[str, ...]) -> None:
        self.drains.pop(name, None)

    def _drain_info(self, name: str, addrs: Sequence[str]) -> DrainInfo:
        raise NotImplementedError

    def _after_pass(self, agent: Agent) -> None:
        raise NotImplementedError

    # ── names ───────────────────────────────────────────────────────────────────
    def _resolve(self, text: str) -> tuple[str, tuple[str, ...]]:
        """(name, addresses) of a next hop given by name or address."""
        if text in self.names:
            return text, self.names[text]
        try:
            addr = str(ipaddress.ip_address(text.partition("%")[0]))
        except ValueError:
            raise NotFound(f"no next hop {text!r}") from None
        for name, addrs in self.names.items():
            if addr in addrs:
                return name, addrs
        if addr in set(self._gateways()):
            return addr, (addr,)
        raise NotFound(f"no next hop {text!r}")

    # ── drain ───────────────────────────────────────────────────────────────────
    def _actuator(self) -> DrainActuator:
        if self.actuator is None:
            raise InvalidArgument(self.no_actuator)
        return self.actuator

    def drain(self, nexthop: str, deadline_s: float | None) -> DrainInfo:
        if deadline_s is not None and deadline_s <= 0:
            raise InvalidArgument("the deadline must be more than 0 seconds")
        actuator = self._actuator()

        def do() -> DrainInfo:
            name, addrs = self._resolve(nexthop)
            actuator.drain(addrs)
            deadline = time.time() + deadline_s if deadline_s is not None else None
            self._drain_started(name, addrs, deadline)
            self.bus.publish(Event(time.time(), "drain", name, ", ".join(addrs)))
            return self._drain_info(name, addrs)

        return self.agent.call(do)

    def undrain(self, nexthop: str) -> DrainInfo:
        actuator = self._actuator()

        def do() -> DrainInfo:
            name, addrs = self._resolve(nexthop)
            actuator.undrain(addrs)
            self._drain_ended(name, addrs)
            self.bus.publish(Event(time.time(), "undrain", name, ", ".join(addrs)))
            return self._drain_info(name, addrs)

        return self.agent.call(do)

    def watch_events(self) -> Iterator[Event]:
        return self.bus.subscribe()

    def resync(self) -> None:
        self.agent.call(lambda: self.agent.resync())


def flow_matches(f: FlowInfo, flt: FlowFilter) -> bool:
    """The API's flow filter (both backends); a bad VIP is the caller's InvalidArgument."""
    if flt.src and f.src != flt.src:
        return False
    if flt.dst and f.dst != flt.dst:
        return False
    if flt.sport is not None and f.sport != flt.sport:
        return False
    if flt.dport is not None and f.dport != flt.dport:
        return False
    if flt.vip:
        try:
            net = ipaddress.ip_network(flt.vip, strict=False)
            if ipaddress.ip_address(f.dst) not in net:
                return False
        except ValueError:
            raise InvalidArgument(f"bad VIP {flt.vip!r}") from None
    return True
