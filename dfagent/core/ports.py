"""The ports every backend implements (``typing.Protocol``s), so the agent, the fakes of the
unit tests and the real backends are checked against one shape. No I/O here.

* :class:`RouteSource` — where next hops come from (Linux netlink today, EOS eAPI later);
* :class:`Hints` — a file descriptor that becomes readable when something may have changed
  (routes, the datapath's own state): the agent wakes on it, checks, and acts;
* :class:`Datapath` — applies plans and reports what is installed (Linux nftables + ip rules
  today; EOS DirectFlow later); it runs no loop of its own;
* :class:`DrainActuator` — makes the routing daemon stop preferring a next hop for new flows;
* :class:`PinSink` — takes per-flow pins in micro-batches (map mode).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any, Protocol

from dfagent.core.nexthops import IPNetwork, NextHop
from dfagent.core.pinning import Event, NhRecord


@dataclass(frozen=True)
class RouteView:
    """One observation: the ECMP set of each route a VIP covers (keyed by prefix text), and
    the liveness of any next hop. ``generation`` moves when the source's answer may have
    changed (None: unknown, always look); ``unrouted``: VIPs no route covers."""

    current: Mapping[str, AbstractSet[NextHop]]
    alive: Callable[[NextHop], bool]
    generation: int | None = None
    unrouted: frozenset[str] | None = None


class RouteSource(Protocol):
    def observe(self, vips: Iterable[IPNetwork]) -> RouteView: ...


class Hints(Protocol):
    def fileno(self) -> int: ...
    def pending(self) -> bool: ...
    def close(self) -> None: ...


class Datapath(Protocol):
    @property
    def records(self) -> Mapping[NextHop, NhRecord]: ...
    def start(self) -> None: ...
    def reconcile(
        self,
        force_count: bool = False,
        pinned: Mapping[int, int] | None = None,
        count: bool = True,
    ) -> list[Event]: ...
    def wants_count(self) -> bool: ...
    def count_pins(self) -> dict[int, int]: ...
    def check_and_repair(self) -> bool: ...
    def close(self) -> None: ...


class DrainActuator(Protocol):
    def drain(self, addresses: Sequence[str]) -> None: ...
    def undrain(self, addresses: Sequence[str]) -> None: ...
    def drained(self) -> set[str]: ...


@dataclass
class PinStats:
    """What a pin sink did with a batch (``pinned`` includes ``replaced``: a flow pinned to
    another next hop before, re-pinned)."""

    pinned: int = 0
    unknown_nexthop: int = 0
    replaced: int = 0
    failed: int = 0
    batches: int = 0
    # Linux map mode: conntrack entries of pinned flows given the pin's mark at once (so a
    # flow whose packets all passed before its pin is pinned and counted), and failures
    ct_marked: int = 0
    ct_failed: int = 0
    evicted: int = 0  # Linux map mode: oldest pins removed to make room in a full map


class PinSink(Protocol):
    def pin(self, batch: Iterable[Any]) -> Any: ...
