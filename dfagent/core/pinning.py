"""Kernel-mode bookkeeping: which next hops keep a mark, a rule and a routing table.

Pure logic with the clock passed in. The runner observes the kernel (the ECMP set of each
VIP, whether each next hop is alive, how many conntrack entries carry each mark) and calls
:meth:`Planner.step`; it gets back the desired datapath state (:class:`Plan`) plus events to
log, and makes the kernel match it.

Rules of the game:

* every next hop a VIP's route uses gets a mark (stable, see :mod:`dfagent.core.marks`), an
  element in the nft next-hop map (so new connections record it), an ``ip rule`` and a table
  routing the VIP via that next hop alone;
* a next hop that leaves the ECMP set (*drained* or withdrawn) keeps its rule and table while
  conntrack entries carry its mark; it leaves the nft map (no new connection can pick it
  anyway); once no entry carries its mark for ``gc_grace`` seconds, everything is removed;
* a forgotten next hop's slot is quarantined (in ``released``) while any entry carries its
  mark, and only then handed to another next hop;
* a *dead* next hop (link down, neighbour FAILED) is released at once: no rule (packets fall
  back to the main table), its mark goes into the ``released`` set so the datapath clears it
  from conntrack on the connection's next packet, and it leaves the map. It is removed once
  no entry carries its mark or after ``dead_hold`` seconds (closed or idle connections never
  send the packet that clears their mark), or comes back if it revives while still in an
  ECMP set.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from dfagent.core.marks import MarkAllocator
from dfagent.core.nexthops import NextHop

ACTIVE = "active"  # in an ECMP set, alive
DRAINED = "drained"  # out of every ECMP set, alive, pins kept
DEAD = "dead"  # link down / neighbour failed: pins released


@dataclass
class NhRecord:
    nexthop: NextHop
    mark: int
    vips: set[str] = field(default_factory=set)  # VIPs it has carried (routes in its table)
    in_ecmp: bool = False
    alive: bool = True
    left_at: float | None = None  # when it left every ECMP set
    pinned: int | None = None  # conntrack entries with its mark (last count)
    zero_since: float | None = None
    dead_since: float | None = None
    _frozen: frozenset[str] = field(default_factory=frozenset, repr=False, compare=False)

    def frozen_vips(self) -> frozenset[str]:
        """``vips`` as a frozenset, the same object while it has not grown (it only grows)."""
        if len(self._frozen) != len(self.vips):
            self._frozen = frozenset(self.vips)
        return self._frozen

    @property
    def state(self) -> str:
        if not self.alive:
            return DEAD
        return ACTIVE if self.in_ecmp else DRAINED

    def to_json(self) -> dict[str, object]:
        return {
            "nexthop": str(self.nexthop),
            "family": self.nexthop.family,
            "ifname": self.nexthop.ifname,
            "gateway": self.nexthop.gateway,
            "mark": f"0x{self.mark:08x}",
            "table": self.mark,
            "state": self.state,
            "vips": sorted(self.vips),
            "pinned": self.pinned,
        }


@dataclass(frozen=True)
class Plan:
    """Desired datapath state."""

    nh_map: dict[NextHop, int]  # elements of the nft next-hop maps
    released: frozenset[int]  # marks cleared from conntrack on the next packet
    rules: dict[int, int]  # mark → rule family (4/6); table id == mark
    # table (== mark) → (its next hop, the destinations it routes); the set is the same
    # object from plan to plan while unchanged, so a datapath skips unchanged tables
    tables: dict[int, tuple[NextHop, frozenset[str]]]

    @property
    def routes(self) -> frozenset[tuple[int, str, NextHop]]:
        """(table, destination, next hop) of every table route."""
        return frozenset((t, v, nh) for t, (nh, vips) in self.tables.items() for v in vips)


class PinCounts(dict[int, int]):
    """slot → pinned entries, from one count. ``fresh``: the slots that count really looked
    at (None: every slot, a census); other slots keep their last figure."""

    fresh: frozenset[int] | None = None

    def __init__(self, counts: Mapping[int, int], fresh: frozenset[int] | None = None) -> None:
        super().__init__(counts)
        self.fresh = fresh


@dataclass(frozen=True)
class Event:
    kind: str  # added, drained, returned, dead, revived, removed
    nexthop: NextHop
    mark: int
    pinned: int | None = None


class Planner:
    def __init__(
        self, marks: MarkAllocator | None = None, gc_grace: float = 5.0, dead_hold: float = 30.0
    ) -> None:
        self.marks = marks or MarkAllocator()
        self.gc_grace = gc_grace
        self.dead_hold = dead_hold
        self.records: dict[NextHop, NhRecord] = {}
        # next hop → the destinations whose ECMP set holds it, kept up to date by diffing
        # each step's sets against the last (only changed destinations cost anything)
        self._members: dict[NextHop, set[str]] = {}
        self._last: dict[str, frozenset[NextHop]] = {}

    def adopt(self, nh: NextHop, vips: Iterable[str], now: float) -> None:
        """Take over a next hop found in the kernel/state file at start (not yet observed)."""
        rec = self.records.get(nh)
        if rec is None:
            rec = NhRecord(nh, self.marks.mark(nh), left_at=now)
            self.records[nh] = rec
        rec.vips.update(vips)

    def step(
        self,
        now: float,
        current: Mapping[str, Iterable[NextHop]],
        alive: Callable[[NextHop], bool],
        pinned: Mapping[int, int] | None,
    ) -> tuple[Plan, list[Event]]:
        """One reconcile round. ``pinned`` is None when conntrack was not counted this round."""
        events: list[Event] = []
        fresh = getattr(pinned, "fresh", None)
        if pinned is not None:  # marks no entry carries any more are free again
            if fresh is None:
                self.marks.unquarantine(pinned)
            else:
                self.marks.unquarantine({m: pinned.get(m, 0) for m in fresh} | {
                    m: 1 for m in self.marks.quarantine - fresh})  # fmt: skip
        members = self._update_members(current)

        # sorted: marks go to new next hops in one order whatever the set iteration order
        for nh, vips in sorted(members.items()):
            rec = self.records.get(nh)
            if rec is None:
                rec = NhRecord(nh, self.marks.mark(nh))
                self.records[nh] = rec
                events.append(Event("added", nh, rec.mark))
            elif not rec.in_ecmp:
                events.append(Event("returned", nh, rec.mark, rec.pinned))
            rec.in_ecmp = True
            rec.left_at = None
            rec.vips.update(vips)

        for nh, rec in list(self.records.items()):
            counted = pinned is not None and (fresh is None or rec.mark in fresh)
            if nh not in members and rec.in_ecmp:
                rec.in_ecmp = False
                rec.left_at = now
                rec.zero_since = None  # a zero counted before it left proves nothing
                events.append(Event("drained", nh, rec.mark, rec.pinned))
                if not counted:
                    rec.pinned = None  # unknown until a count looks at it again
            if counted and pinned is not None:
                rec.pinned = pinned.get(rec.mark, 0)
                if rec.pinned:
                    rec.zero_since = None
                elif rec.zero_since is None:
                    rec.zero_since = now
            was_alive = rec.alive
            rec.alive = alive(nh)
            if was_alive and not rec.alive:
                rec.dead_since = now
                if pinned is None:
                    rec.zero_since = None  # wait for a count taken after the death
                events.append(Event("dead", nh, rec.mark, rec.pinned))
            elif rec.alive and not was_alive:
                rec.dead_since = None
                events.append(Event("revived", nh, rec.mark, rec.pinned))
            if self._collectable(rec, now):
                del self.records[nh]
                # the slot is free for another next hop once no connection carries it
                self.marks.release(nh, carried=rec.pinned != 0)
                events.append(Event("removed", nh, rec.mark, rec.pinned))
        return self.plan(), events

    def _update_members(self, current: Mapping[str, Iterable[NextHop]]) -> dict[NextHop, set[str]]:
        last = self._last
        members = self._members
        for vip in [v for v in last if v not in current]:
            for nh in last.pop(vip):
                members[nh].discard(vip)
        for vip, nhs in current.items():
            old = last.get(vip)
            if old is not None and (old is nhs or old == nhs):
                continue
            new = nhs if isinstance(nhs, frozenset) else frozenset(nhs)
            for nh in (old or frozenset()) - new:
                members[nh].discard(vip)
            for nh in new - (old or frozenset()):
                members.setdefault(nh, set()).add(vip)
            last[vip] = new
        for nh in [nh for nh, vips in members.items() if not vips]:
            del members[nh]
        return members

    def _collectable(self, rec: NhRecord, now: float) -> bool:
        if rec.in_ecmp:
            return False  # still routed to (if dead: kept, released, until it revives or goes)
        if not rec.alive and rec.dead_since is not None and now - rec.dead_since >= self.dead_hold:
            # entries of connections that never send again (closed, idle) keep the mark;
            # with no rule left for it, forgetting the record harms nothing
            return True
        if rec.pinned != 0 or rec.zero_since is None:
            return False  # pins left, or never counted
        since = max(rec.zero_since, rec.left_at if rec.left_at is not None else rec.zero_since)
        if not rec.alive:
            return True  # dead and nothing pinned: nothing to wait for
        return now - since >= self.gc_grace

    def plan(self) -> Plan:
        nh_map: dict[NextHop, int] = {}
        released: set[int] = set()
        rules: dict[int, int] = {}
        tables: dict[int, tuple[NextHop, frozenset[str]]] = {}
        for nh, rec in self.records.items():
            if not rec.alive:
                released.add(rec.mark)
                continue
            if rec.in_ecmp:
                nh_map[nh] = rec.mark
            rules[rec.mark] = nh.family
            tables[rec.mark] = (nh, rec.frozen_vips())
        # marks of forgotten next hops still on connections: cleared on their next packet
        released |= self.marks.quarantine
        return Plan(nh_map, frozenset(released), rules, tables)

    def status(self) -> list[dict[str, object]]:
        return [r.to_json() for r in sorted(self.records.values(), key=lambda r: r.mark)]
