"""Map mode: one nft map element per flow (5-tuple → next-hop slot), written in micro-batches.

The egress of each flow is *observed* (a SYN mirrored at an ECMP member's egress says which
next hop carried it), so callers hand :meth:`MapPinner.pin` items of
``(src, dst, sport, dport, nexthop)``. The next hop is resolved to the same per-next-hop
mark kernel mode uses (its ``ip rule`` and routing table are kept by
:class:`dfagent.backends.linux.datapath.LinuxDatapath` running with ``pin_maps=True``).

The maps (``pin4``/``pin6``) have a declared ``size`` and a timeout; an element jumps to its
slot's ``pin_<slot>`` chain, which writes the slot's mark bits into the packet and into the
conntrack entry, so a connection stays pinned after its element has timed out.

Every batch is one nft transaction through one libnftables handle. A batch that fails (an
element already pinned to another next hop, or an unpin of an expired element) is split in
halves until the offending elements are found; a conflicting element is replaced.

A full map refuses new elements (ENFILE), so a spoofed SYN flood would leave later flows
without a pin. With ``capacity`` (the maps' declared size) and conntrack marks behind the
pins, the oldest-written elements are evicted to make room: they are the next to time out
anyway, and their connections keep the mark their first packets wrote into conntrack. In one
direction the element is the only pin, so nothing is evicted there.
"""

from __future__ import annotations

import logging
import re
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from dfagent.backends.linux.ctmark import CtMarker
from dfagent.backends.linux.nft import NftError, NftHandle, NftScripts
from dfagent.backends.linux.ruleset import (
    T,
    flow_element,
    pin_element,
    render_elements,
    verdict_slot,
)
from dfagent.core.marks import MarkSpace
from dfagent.core.nexthops import NextHop
from dfagent.core.pinbatch import PinItem
from dfagent.core.ports import PinStats

log = logging.getLogger("dfagent.map")
_ELEM_SLOT = re.compile(r":\s*jump\s+pin_([0-9a-fA-F]{8})\b")
_ELEM_MARK = re.compile(r":\s*0x([0-9a-fA-F]+)\s*}")


Resolver = Callable[[int, str | NextHop], int | None]


def resolver_from(marks: Mapping[tuple[int, str], int]) -> Resolver:
    """Resolve next hops through a ``(family, gateway) → mark`` mapping (read on every call,
    so it can be the datapath's live ``gateway_marks``)."""

    def resolve(family: int, nh: str | NextHop) -> int | None:
        if isinstance(nh, NextHop):
            return marks.get((nh.family, nh.gateway))
        gw = nh.partition("%")[0]
        return marks.get((family, gw))

    return resolve


def kernel_resolver(nft: NftHandle) -> Resolver:
    """Resolve next hops from the kernel's ``nh4``/``nh6`` maps (kept by a datapath running in
    another process, e.g. ``dfagent linux map``); re-read when a next hop is not found."""
    table: dict[tuple[int, str], int] = {}

    def load() -> None:
        table.clear()
        for mapname, fam in (("nh4", 4), ("nh6", 6)):
            for key, value in nft.map_elements(mapname):
                slot = verdict_slot(value)
                if isinstance(key, list) and len(key) == 2 and slot is not None:
                    table[(fam, str(key[1]))] = slot

    inner = resolver_from(table)

    def resolve(family: int, nh: str | NextHop) -> int | None:
        got = inner(family, nh)
        if got is None:
            load()
            got = inner(family, nh)
        return got

    return resolve


class MapPinner:
    def __init__(
        self,
        nft: NftScripts,
        resolve: Resolver,
        timeout: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        one_direction: bool = False,
        space: MarkSpace | None = None,
        marker: CtMarker | None = None,
        capacity: int | None = None,
    ) -> None:
        # one direction: write flow4/flow6 (no conntrack needed) instead of pin4/pin6
        self.one_direction = one_direction
        self.space = space or MarkSpace()
        self.nft = nft
        self.resolve = resolve
        self.timeout = timeout
        self.clock = clock
        # conntrack mode: also mark each pinned flow's entry at once, so a connection whose
        # packets all passed before its pin existed is pinned (and counted) anyway
        self.marker = None if one_direction else marker
        self._written: deque[list[float | int]] = deque()  # [time, pins written] per second
        self._live = 0
        # eviction needs the marks behind the pins (see the module text)
        self.capacity = capacity if self.marker is not None else None
        self._keys: dict[str, OrderedDict[str, float]] = {}  # map → key → written, oldest first

    # ── writes ──────────────────────────────────────────────────────────────────
    def pin(self, batch: Iterable[PinItem | Sequence[Any]]) -> PinStats:
        """Pin a micro-batch (one nft transaction). Returns this batch's figures (the agent
        adds them up in its metrics)."""
        res = PinStats(batches=1)
        by_map: dict[str, list[str]] = {}
        flows: list[tuple[str, str, int, int, int]] = []
        for it in batch:
            src, dst, sport, dport, nh = it
            fam = 6 if ":" in str(dst) else 4
            slot = self.resolve(fam, nh)
            if slot is None:
                res.unknown_nexthop += 1
                continue
            flow = (str(src), str(dst), int(sport), int(dport))
            mapname, elem = self._element(*flow, slot)
            by_map.setdefault(mapname, []).append(elem)
            flows.append((*flow, slot))
        for mapname, elems in by_map.items():
            if self.capacity is not None:
                self._make_room(mapname, elems, res)
            self._add(mapname, elems, res)
        if self.marker is not None and flows:
            self._mark(self.marker, flows, res)
        if res.pinned:
            now = self.clock()
            if self._written and now - float(self._written[-1][0]) < 1.0:
                self._written[-1][1] = int(self._written[-1][1]) + res.pinned  # one per second
            else:
                self._written.append([now, res.pinned])
            self._live += res.pinned
        # drop what timed out: nothing on the mirror path asks for count(), and one entry per
        # batch for the whole timeout grew the agent by ~24 kB/s under a flood
        self.count()
        return res

    def _element(
        self, src: str, dst: str, sport: int, dport: int, slot: int | None
    ) -> tuple[str, str]:
        if self.one_direction:
            return flow_element(self.space, src, dst, sport, dport, slot)
        return pin_element(src, dst, sport, dport, slot)

    def _make_room(self, mapname: str, elems: list[str], res: PinStats) -> None:
        """Evict the oldest-written elements so ``elems`` fit in ``capacity``."""
        assert self.capacity is not None
        keys = self._keys.setdefault(mapname, OrderedDict())
        horizon = self.clock() - self.timeout
        while keys and next(iter(keys.values())) < horizon:  # timed out in the kernel too
            keys.popitem(last=False)
        new = {_key(e) for e in elems} - keys.keys()
        over = len(keys) + len(new) - self.capacity
        if over <= 0:
            return
        victims = [keys.popitem(last=False)[0] for _ in range(min(over, len(keys)))]
        self._delete(mapname, victims)  # an element already gone counts as evicted too
        res.evicted += len(victims)
        self._live = max(0, self._live - len(victims))

    def _remember(self, mapname: str, elems: list[str], rewritten: bool = False) -> None:
        """Note when each element was written; adding one already there keeps its kernel
        timeout, so its first time stays (``rewritten``: deleted and added again)."""
        if self.capacity is None:
            return
        keys = self._keys.setdefault(mapname, OrderedDict())
        now = self.clock()
        for e in elems:
            key = _key(e)
            if rewritten:
                keys.pop(key, None)
            keys.setdefault(key, now)

    def _add(self, mapname: str, elems: list[str], res: PinStats) -> None:
        try:
            self.nft.run(render_elements("add", mapname, elems))
            res.pinned += len(elems)
            self._remember(mapname, elems)
            return
        except NftError:
            pass
        if len(elems) > 1:
            mid = len(elems) // 2
            self._add(mapname, elems[:mid], res)
            self._add(mapname, elems[mid:], res)
            return
        key = _key(elems[0])
        try:  # pinned to another next hop before (port reuse): replace
            self.nft.run(
                render_elements("delete", mapname, [key]) + render_elements("add", mapname, elems)
            )
            res.pinned += 1
            res.replaced += 1
            self._remember(mapname, elems, rewritten=True)
        except NftError:
            res.failed += 1

    def _mark(
        self, marker: CtMarker, flows: list[tuple[str, str, int, int, int]], res: PinStats
    ) -> None:
        try:
            out = marker.mark((*f[:4], self.space.mark(f[4])) for f in flows)
        except OSError as exc:  # ENOBUFS and the like: the packet path still marks them
            log.warning("ct-mark-failed flows=%d error=%s", len(flows), exc)
            res.ct_failed += len(flows)
            return
        res.ct_marked += out.updated
        res.ct_failed += out.failed
        if out.failed:
            log.warning("ct-mark-failed flows=%d error=%s", out.failed, out.error)

    def close(self) -> None:
        if self.marker is not None:
            self.marker.close()

    def unpin(self, batch: Iterable[Sequence[Any]]) -> int:
        """Remove pins of (src, dst, sport, dport[, …]) flows; returns how many were there."""
        by_map: dict[str, list[str]] = {}
        for it in batch:
            src, dst, sport, dport = it[0], it[1], it[2], it[3]
            mapname, key = self._element(str(src), str(dst), int(sport), int(dport), None)
            by_map.setdefault(mapname, []).append(key)
            if mapname in self._keys:
                self._keys[mapname].pop(key, None)
        removed = 0
        for mapname, keys in by_map.items():
            removed += self._delete(mapname, keys)
        self._live = max(0, self._live - removed)
        return removed

    def _delete(self, mapname: str, keys: list[str]) -> int:
        try:
            self.nft.run(render_elements("delete", mapname, keys))
            return len(keys)
        except NftError:
            if len(keys) == 1:
                return 0  # expired or never pinned
        mid = len(keys) // 2
        return self._delete(mapname, keys[:mid]) + self._delete(mapname, keys[mid:])

    # ── reads ───────────────────────────────────────────────────────────────────
    def count(self) -> int:
        """Pins written within the timeout and not unpinned (kept locally: listing a map of a
        million elements takes ~47 s, so the kernel is not asked)."""
        horizon = self.clock() - self.timeout
        while self._written and float(self._written[0][0]) < horizon:
            self._live -= int(self._written.popleft()[1])
        self._live = max(0, self._live)
        return self._live

    def lookup(self, src: str, dst: str, sport: int, dport: int) -> int | None:
        """The slot pinned for one flow in the kernel map, or None."""
        mapname, key = self._element(src, dst, sport, dport, None)
        try:  # nft 1.0.6 answers `get element` in text even in JSON mode
            out = self.nft.run(f"get element {T} {mapname} {{ {key} }}")
        except NftError:
            return None
        m = _ELEM_SLOT.search(out)
        if m:
            return int(m.group(1), 16)
        m = _ELEM_MARK.search(out)  # one direction: the element holds the mark bits
        return self.space.slot(int(m.group(1), 16)) if m else None


def _key(elem: str) -> str:
    """An element's key: ``KEY : VERDICT`` → ``KEY``."""
    return elem.split(" : ")[0]
