"""The per-flow pin table every switch backend shares: what is pinned where, how much room is
left, which pin to evict, which to retry. Pure: the clock is a parameter, no I/O.

The backend calls:

* :meth:`PinTable.want` with a micro-batch of ``(flow, nexthop)`` from the mirror path and
  gets back :class:`Changes` (flows to install, flows to remove to make room or to replace a
  pin to another next hop);
* :meth:`PinTable.applied` / :meth:`PinTable.failed` with the outcome of writing them;
* :meth:`PinTable.observe` with what the device holds (at start and periodically): each of
  this agent's flows with its packet counter and whether the device programmed it. That
  adopts flows a previous run made, notices activity (a counter that moved), notices flows
  the device aged out or lost (a reboot), and rejections (a full TCAM);
* :meth:`PinTable.age` for devices without idle timeouts of their own (PBR, traffic-policy).

Capacity: the device's (from the switch profile) minus what other agents use there (learned
at each :meth:`observe`), optionally capped by the operator. A new pin over it evicts the
least recently active pin — activity is "its packet counter moved since the last look", or
its SYN. Never silent overflow: every pin that cannot be placed is counted (``overflow``),
every rejection is counted and retried with backoff up to ``max_retries``, then counted as
``failed``.

A rejection also teaches the table the device's real size (the profile's figure may be too
high, e.g. other features share the TCAM): what was programmed, ours and the others', when the
device said no. The room is that size minus what the others hold at each look.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import NamedTuple

PENDING = "pending"  # handed to the backend, outcome not known yet
INSTALLED = "installed"  # the device took it (and, where it tells, programmed it)
REJECTED = "rejected"  # the device refused it; a retry is scheduled


class Flow(NamedTuple):
    """A TCP flow toward a VIP, as the mirrored SYN showed it."""

    src: str
    dst: str
    sport: int
    dport: int


@dataclass
class Pin:
    flow: Flow
    nexthop: str
    created: float
    last_active: float
    state: str = PENDING
    packets: int | None = None  # the device's counter at the last look (None: not seen yet)
    attempts: int = 0  # rejections so far
    retry_at: float | None = None


@dataclass
class Changes:
    """What the backend must do, removals first (they make the room the installs need)."""

    install: list[Pin] = field(default_factory=list)
    remove: list[Pin] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.install or self.remove)

    def extend(self, other: Changes) -> None:
        self.install += other.install
        self.remove += other.remove


@dataclass
class PinTableStats:
    requested: int = 0  # pins asked for
    installed: int = 0  # written to the device
    refreshed: int = 0  # asked again for a flow already pinned there (a retransmitted SYN)
    replaced: int = 0  # pinned before to another next hop (port reuse)
    evicted: int = 0  # removed to make room (least recently active)
    overflow: int = 0  # could not be placed: no room, nothing of ours to evict
    rejected: int = 0  # refused by the device (e.g. not programmed: TCAM full)
    retried: int = 0
    failed: int = 0  # rejected max_retries times, or the write failed for good
    adopted: int = 0  # found on the device at a look, not in the table (a previous run)
    expired: int = 0  # idle past the timeout (aged by the device, or by us)
    lost: int = 0  # gone from the device while still active (reboot, someone removed it)
    stale: int = 0  # ours on the device but not wanted (bad name, not a VIP)

    def to_json(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class Seen:
    """One of this agent's flows as the device reports it."""

    nexthop: str
    packets: int | None = None  # None: the device keeps no counter
    programmed: bool = True  # False: in the config but not in hardware (rejected)
    expired: bool = False  # its idle/hard timeout took it out of hardware; config left over


class PinTable:
    def __init__(
        self,
        capacity: int,
        idle_timeout: float,
        limit: int | None = None,
        max_retries: int = 3,
        retry_backoff: float = 1.0,
    ) -> None:
        self.capacity = capacity  # the device's, from the switch profile
        self.limit = limit  # the operator's cap for this agent (sharing a switch)
        self.idle_timeout = idle_timeout
        self.max_retries = max_retries
        self.retry_backoff = retry_backoff
        self.foreign = 0  # flows other agents (or operators) hold on the device
        self.learned: int | None = None  # the device's real size, seen when it said no
        self.pins: dict[Flow, Pin] = {}
        self.stats = PinTableStats()

    # ── room ────────────────────────────────────────────────────────────────────
    @property
    def room(self) -> int:
        """How many pins this agent may hold now."""
        size = self.capacity if self.learned is None else min(self.capacity, self.learned)
        room = max(0, size - self.foreign)
        if self.limit is not None:
            room = min(room, self.limit)
        return room

    def held(self) -> int:
        """Pins that take room on the device (rejected ones wait outside it)."""
        return sum(1 for p in self.pins.values() if p.state != REJECTED)

    def counts(self) -> dict[str, int]:
        """Pins per next hop (installed or pending)."""
        out: dict[str, int] = {}
        for p in self.pins.values():
            if p.state != REJECTED:
                out[p.nexthop] = out.get(p.nexthop, 0) + 1
        return out

    # ── the mirror path ─────────────────────────────────────────────────────────
    def want(self, now: float, items: Iterable[tuple[Flow, str]]) -> Changes:
        ch = Changes()
        new: list[Pin] = []
        for flow, nexthop in items:
            self.stats.requested += 1
            pin = self.pins.get(flow)
            if pin is not None and pin.nexthop == nexthop and pin.state != REJECTED:
                pin.last_active = now  # a retransmitted SYN: nothing to write
                self.stats.refreshed += 1
                continue
            if pin is not None:
                if pin.nexthop != nexthop:
                    self.stats.replaced += 1
                if pin.state != REJECTED:
                    ch.remove.append(pin)
                del self.pins[flow]
            fresh = Pin(flow, nexthop, created=now, last_active=now)
            self.pins[flow] = fresh
            new.append(fresh)
        ch.extend(self._make_room(new))
        return ch

    def _make_room(self, new: list[Pin]) -> Changes:
        """Evict the least recently active pins so ``new`` fits; what cannot fit overflows."""
        ch = Changes(install=list(new))
        over = self.held() - self.room
        if over <= 0:
            return ch
        fresh = {id(p) for p in new}
        old = [p for p in self.pins.values() if p.state != REJECTED and id(p) not in fresh]
        for victim in heapq.nsmallest(over, old, key=lambda p: (p.last_active, p.created)):
            del self.pins[victim.flow]
            ch.remove.append(victim)
            self.stats.evicted += 1
            over -= 1
        while over > 0 and ch.install:  # nothing of ours left to evict: say so
            dropped = ch.install.pop()
            del self.pins[dropped.flow]
            self.stats.overflow += 1
            over -= 1
        return ch

    # ── outcomes ────────────────────────────────────────────────────────────────
    def applied(self, pins: Iterable[Pin]) -> None:
        for p in pins:
            if self.pins.get(p.flow) is p:
                p.state = INSTALLED
                p.retry_at = None
                self.stats.installed += 1

    def failed(self, pins: Iterable[Pin], now: float) -> None:
        """The device refused to take these (an error on write): retry later, or give up."""
        for p in pins:
            if self.pins.get(p.flow) is p:
                self._reject(p, now)

    def _reject(self, p: Pin, now: float) -> None:
        p.state = REJECTED
        p.attempts += 1
        self.stats.rejected += 1
        if p.attempts > self.max_retries:
            del self.pins[p.flow]
            self.stats.failed += 1
            return
        p.retry_at = now + self.retry_backoff * (2 ** (p.attempts - 1))

    def forget(self, flows: Iterable[Flow]) -> int:
        """Drop pins (an operator unpinned them); returns how many were there."""
        n = 0
        for f in flows:
            if self.pins.pop(f, None) is not None:
                n += 1
        return n

    # ── looking at the device ───────────────────────────────────────────────────
    def observe(
        self, now: float, ours: Mapping[Flow, Seen], foreign: int, complete: bool = True
    ) -> Changes:
        """Reconcile with the device: ``ours`` is every flow of this agent it holds,
        ``foreign`` how many it holds for others. ``complete=False`` (a partial listing)
        only learns activity, it never concludes that a flow is gone."""
        ch = Changes()
        self.foreign = foreign
        rejected_now = 0
        for flow, seen in ours.items():
            pin = self.pins.get(flow)
            if seen.expired:  # aged out by the device: forget it, clear its leftover config
                if pin is not None:
                    del self.pins[flow]
                self.stats.expired += 1
                ch.remove.append(pin or Pin(flow, seen.nexthop, now, now, INSTALLED))
                continue
            if pin is None:  # a previous run's pin: adopt it, active as of now
                pin = Pin(flow, seen.nexthop, created=now, last_active=now, state=INSTALLED)
                pin.packets = seen.packets
                self.pins[flow] = pin
                self.stats.adopted += 1
            elif pin.nexthop != seen.nexthop:  # a stale copy (replaced, not yet removed)
                ch.remove.append(Pin(flow, seen.nexthop, now, now, INSTALLED))
                continue
            if seen.packets is not None:
                if pin.packets is not None and seen.packets > pin.packets:
                    pin.last_active = now
                pin.packets = seen.packets
            if not seen.programmed and pin.state != REJECTED:
                rejected_now += 1
                ch.remove.append(pin)  # out of the device's config; it comes back on retry
                self._reject(pin, now)
            elif seen.programmed and pin.state == PENDING:
                pin.state = INSTALLED
        if rejected_now:  # full at this many: the device's real size (others may grow)
            programmed = sum(1 for s in ours.values() if s.programmed and not s.expired)
            self.learned = programmed + foreign
        if complete:
            for flow, pin in list(self.pins.items()):
                if flow in ours or pin.state != INSTALLED:
                    continue
                del self.pins[flow]
                if now - pin.last_active >= self.idle_timeout:
                    self.stats.expired += 1  # the device aged it out, as asked
                else:  # gone while active: put it back (a reboot loses non-persistent flows)
                    self.stats.lost += 1
                    back = Pin(flow, pin.nexthop, pin.created, pin.last_active)
                    self.pins[flow] = back
                    ch.install.append(back)
        ch.extend(self.retries(now))
        return ch

    def retries(self, now: float) -> Changes:
        """Rejected pins whose backoff has passed, evicting for room as new pins do."""
        due = [
            p
            for p in self.pins.values()
            if p.state == REJECTED and p.retry_at is not None and p.retry_at <= now
        ]
        if not due:
            return Changes()
        for p in due:
            p.state = PENDING
            p.retry_at = None
            self.stats.retried += 1
        return self._make_room(due)

    def next_retry(self) -> float | None:
        times = [p.retry_at for p in self.pins.values() if p.retry_at is not None]
        return min(times, default=None)

    def age(self, now: float) -> Changes:
        """Pins idle for the timeout (for devices that do not age flows themselves)."""
        ch = Changes()
        for flow, pin in list(self.pins.items()):
            if pin.state == INSTALLED and now - pin.last_active >= self.idle_timeout:
                del self.pins[flow]
                ch.remove.append(pin)
                self.stats.expired += 1
        return ch
