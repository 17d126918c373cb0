"""Stable allocation of packet marks (and routing-table ids) to next hops.

dfagent owns one 16-bit slice of the 32-bit mark space: ``MARK_BASE | index`` with index
1..65535 (``MARK_MASK`` selects the slice). The routing table of a next hop has the same
number as its mark, so ``ip rule`` lines read ``fwmark 0xdfa0003 lookup 234487811``. Rules sit
at ``RULE_PRIORITY`` and routes and rules carry protocol ``RT_PROTO``: together with the nft
table name, that is how ``dfagent linux cleanup`` recognises what it created.

An allocation never moves: a next hop keeps its mark for the life of the state file, and a
restart re-reads the state file and the kernel's ``nh4``/``nh6`` maps (the kernel wins).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from dfagent.core.nexthops import NextHop

MARK_BASE = 0x0DFA0000
MARK_MASK = 0xFFFF0000
MAX_INDEX = 0xFFFF
TABLE_BASE = MARK_BASE  # table id == mark
RULE_PRIORITY = 9000
RT_PROTO = 223  # "dfagent" in /etc/iproute2/rt_protos terms; unused by known daemons


class MarksExhausted(RuntimeError):
    pass


def is_dfagent_mark(mark: int) -> bool:
    return (mark & MARK_MASK) == MARK_BASE and (mark & ~MARK_MASK) != 0


def is_dfagent_table(table: int) -> bool:
    return is_dfagent_mark(table)


def table_for_mark(mark: int) -> int:
    return mark


class MarkAllocator:
    """next hop → mark, stable and collision-free."""

    def __init__(self, initial: Mapping[NextHop, int] | None = None) -> None:
        self._by_nh: dict[NextHop, int] = {}
        self._by_mark: dict[int, NextHop] = {}
        for nh, mark in (initial or {}).items():
            self.adopt(nh, mark)

    def adopt(self, nh: NextHop, mark: int) -> bool:
        """Record an existing allocation; returns False (and ignores it) on a conflict."""
        if not is_dfagent_mark(mark):
            return False
        if self._by_nh.get(nh) == mark:
            return True
        if nh in self._by_nh or mark in self._by_mark:
            return False
        self._by_nh[nh] = mark
        self._by_mark[mark] = nh
        return True

    def mark(self, nh: NextHop) -> int:
        """The mark of ``nh``, allocating the lowest free one the first time."""
        got = self._by_nh.get(nh)
        if got is not None:
            return got
        for idx in range(1, MAX_INDEX + 1):
            m = MARK_BASE | idx
            if m not in self._by_mark:
                self._by_nh[nh] = m
                self._by_mark[m] = nh
                return m
        raise MarksExhausted("all 65535 dfagent marks are allocated")

    def get(self, nh: NextHop) -> int | None:
        return self._by_nh.get(nh)

    def nexthop(self, mark: int) -> NextHop | None:
        return self._by_mark.get(mark)

    def items(self) -> Iterable[tuple[NextHop, int]]:
        return sorted(self._by_nh.items(), key=lambda kv: kv[1])

    def to_json(self) -> dict[str, int]:
        return {nh.key(): m for nh, m in self.items()}

    @classmethod
    def from_json(cls, data: Mapping[str, int]) -> MarkAllocator:
        alloc = cls()
        for key, mark in data.items():
            alloc.adopt(NextHop.from_key(key), int(mark))
        return alloc
