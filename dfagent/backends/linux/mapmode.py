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
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import NamedTuple

from dfagent.backends.linux.nft import Nft, NftError
from dfagent.backends.linux.ruleset import (
    T,
    flow_element,
    pin_element,
    render_elements,
    verdict_slot,
)
from dfagent.core.marks import MarkSpace
from dfagent.core.nexthops import NextHop
from dfagent.core.ports import PinSink, PinStats

_ELEM_SLOT = re.compile(r":\s*jump\s+pin_([0-9a-fA-F]{8})\b")
_ELEM_MARK = re.compile(r":\s*0x([0-9a-fA-F]+)\s*}")


class PinItem(NamedTuple):
    src: str
    dst: str
    sport: int
    dport: int
    nexthop: str | NextHop  # gateway address, "gateway%ifname", or a NextHop


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


def kernel_resolver(nft: Nft) -> Resolver:
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
        nft: Nft,
        resolve: Resolver,
        timeout: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        one_direction: bool = False,
        space: MarkSpace | None = None,
    ) -> None:
        # one direction: write flow4/flow6 (no conntrack needed) instead of pin4/pin6
        self.one_direction = one_direction
        self.space = space or MarkSpace()
        self.nft = nft
        self.resolve = resolve
        self.timeout = timeout
        self.clock = clock
        self._written: deque[list[float | int]] = deque()  # [time, live count] per batch
        self._live = 0

    # ── writes ──────────────────────────────────────────────────────────────────
    def pin(self, batch: Iterable[PinItem | Sequence[object]]) -> PinStats:
        """Pin a micro-batch (one nft transaction). Returns this batch's figures (the agent
        adds them up in its metrics)."""
        res = PinStats(batches=1)
        by_map: dict[str, list[str]] = {}
        for it in batch:
            src, dst, sport, dport, nh = it
            fam = 6 if ":" in str(dst) else 4
            mark = self.resolve(fam, nh)  # type: ignore[arg-type]
            if mark is None:
                res.unknown_nexthop += 1
                continue
            mapname, elem = self._element(str(src), str(dst), int(sport), int(dport), mark)  # type: ignore[call-overload]
            by_map.setdefault(mapname, []).append(elem)
        for mapname, elems in by_map.items():
            self._add(mapname, elems, res)
        if res.pinned:
            self._written.append([self.clock(), res.pinned])
            self._live += res.pinned
        return res

    def _element(
        self, src: str, dst: str, sport: int, dport: int, slot: int | None
    ) -> tuple[str, str]:
        if self.one_direction:
            return flow_element(self.space, src, dst, sport, dport, slot)
        return pin_element(src, dst, sport, dport, slot)

    def _add(self, mapname: str, elems: list[str], res: PinStats) -> None:
        try:
            self.nft.run(render_elements("add", mapname, elems))
            res.pinned += len(elems)
            return
        except NftError:
            pass
        if len(elems) > 1:
            mid = len(elems) // 2
            self._add(mapname, elems[:mid], res)
            self._add(mapname, elems[mid:], res)
            return
        key = elems[0].split(" : ")[0]
        try:  # pinned to another next hop before (port reuse): replace
            self.nft.run(
                render_elements("delete", mapname, [key]) + render_elements("add", mapname, elems)
            )
            res.pinned += 1
            res.replaced += 1
        except NftError:
            res.failed += 1

    def unpin(self, batch: Iterable[Sequence[object]]) -> int:
        """Remove pins of (src, dst, sport, dport[, …]) flows; returns how many were there."""
        by_map: dict[str, list[str]] = {}
        for it in batch:
            src, dst, sport, dport = it[0], it[1], it[2], it[3]
            mapname, key = self._element(str(src), str(dst), int(sport), int(dport), None)  # type: ignore[call-overload]
            by_map.setdefault(mapname, []).append(key)
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


class MicroBatcher:
    """Collects pins and flushes them as one batch when ``max_items`` are waiting or the
    oldest has waited ``max_delay`` seconds (call :meth:`poll` from the receive loop)."""

    def __init__(self, pinner: PinSink, max_items: int = 1000, max_delay: float = 0.002):
        self.pinner = pinner
        self.max_items = max_items
        self.max_delay = max_delay
        self._items: list[PinItem] = []
        self._first = 0.0

    def add(self, item: PinItem, now: float) -> bool:
        if not self._items:
            self._first = now
        self._items.append(item)
        if len(self._items) >= self.max_items:
            self.flush()
            return True
        return False

    def poll(self, now: float) -> bool:
        if self._items and now - self._first >= self.max_delay:
            self.flush()
            return True
        return False

    def flush(self) -> int:
        """Hand the waiting pins over; returns how many were handed (the sink may apply them
        later: the agent's loop does)."""
        items, self._items = self._items, []
        if not items:
            return 0
        self.pinner.pin(items)
        return len(items)
