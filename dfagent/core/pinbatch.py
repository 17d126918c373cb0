"""Pins on their way to a pin sink: one pin (:class:`PinItem`) and the micro-batcher that
groups them, so a sink writes many pins per transaction or request (nft, eAPI)."""

from __future__ import annotations

from typing import NamedTuple

from dfagent.core.nexthops import NextHop
from dfagent.core.ports import PinSink


class PinItem(NamedTuple):
    src: str
    dst: str
    sport: int
    dport: int
    nexthop: str | NextHop  # gateway address, "gateway%ifname", or a NextHop


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
