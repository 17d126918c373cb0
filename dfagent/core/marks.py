"""Stable allocation of next-hop *slots*, and the packet-mark bits a slot is written as.

Every next hop dfagent pins to gets a slot: ``SLOT_BASE | index`` (index 1..). The slot is the
number of its routing table (``ip rule … lookup 234487811`` = 0x0dfa0003) and the identity the
planner, the state file and the conntrack counts use. On packets and connections the slot is
written into a configurable field of the 32-bit mark (:class:`MarkSpace`, default bits
``0x0fff0000``): the top bit of the field says "dfagent", the bits below it carry the index.
dfagent never reads or writes a mark bit outside its field, so it coexists with other mark
users (kube-proxy's 0x4000/0x8000, multi-WAN connmark bits, policy routing by hand).

Rules sit at ``RULE_PRIORITY`` and routes and rules carry protocol ``RT_PROTO``: together with
the slot range of the table ids and the nft table name, that is how ``dfagent linux cleanup``
recognises what it created.

An allocation never moves while its next hop is known: a restart re-reads the kernel (table
routes, nft maps) and the state file. A slot is freed only after its next hop was forgotten
and no conntrack entry carries its mark any more (:meth:`MarkAllocator.release`,
:meth:`MarkAllocator.unquarantine`), so an old connection is never moved to a new next hop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from dfagent.core.nexthops import NextHop

SLOT_BASE = 0x0DFA0000
SLOT_MASK = 0xFFFF0000
MARK_BASE = SLOT_BASE  # the planner's "mark" of a next hop is its slot (kept name)
TABLE_BASE = SLOT_BASE  # table id == slot
MAX_INDEX = 0xFFFF
RULE_PRIORITY = 9000
RT_PROTO = 223  # "dfagent" in /etc/iproute2/rt_protos terms; unused by known daemons
DEFAULT_MARK_MASK = 0x0FFF0000


class MarksExhausted(RuntimeError):
    pass


def is_dfagent_slot(slot: int) -> bool:
    return (slot & SLOT_MASK) == SLOT_BASE and (slot & ~SLOT_MASK) != 0


is_dfagent_mark = is_dfagent_slot  # old name: the planner calls slots marks
is_dfagent_table = is_dfagent_slot


def parse_mask(text: str | int) -> int:
    """A mark field: contiguous bits, at least 2 (one flag bit and one index bit)."""
    try:
        mask = text if isinstance(text, int) else int(str(text), 0)
    except ValueError:
        raise ValueError(f"{text!r} is not a number (write it like 0x0fff0000)") from None
    if not 0 < mask <= 0xFFFFFFFF:
        raise ValueError(f"0x{mask:x} is not a 32-bit mask")
    low = mask & -mask
    if (mask + low) & mask:
        raise ValueError(f"0x{mask:08x} is not one contiguous run of bits")
    if mask.bit_count() < 2:
        raise ValueError(f"0x{mask:08x} has one bit: dfagent needs at least 2 (flag + index)")
    return mask


@dataclass(frozen=True)
class MarkSpace:
    """dfagent's field of the packet and connection mark."""

    mask: int = DEFAULT_MARK_MASK

    def __post_init__(self) -> None:
        parse_mask(self.mask)

    @property
    def shift(self) -> int:
        return (self.mask & -self.mask).bit_length() - 1

    @property
    def flag(self) -> int:
        """The top bit of the field: set on every dfagent mark (a cheap kernel-side filter)."""
        return 1 << (self.mask.bit_length() - 1)

    @property
    def max_index(self) -> int:
        return min(MAX_INDEX, (1 << (self.mask.bit_count() - 1)) - 1)

    def mark(self, slot: int) -> int:
        """The mark bits (within the field) that stand for ``slot``."""
        idx = slot & ~SLOT_MASK
        if not is_dfagent_slot(slot) or idx > self.max_index:
            raise ValueError(f"slot 0x{slot:08x} does not fit mark field 0x{self.mask:08x}")
        return self.flag | (idx << self.shift)

    def slot(self, mark: int) -> int | None:
        """The slot a (whole) packet/connection mark carries, or None if not dfagent's."""
        field = mark & self.mask
        if not field & self.flag:
            return None
        idx = (field & ~self.flag) >> self.shift
        return SLOT_BASE | idx if idx else None

    def overlaps(self, bits: int) -> int:
        return self.mask & bits


class MarkAllocator:
    """next hop → slot, stable and collision-free; freed slots wait in quarantine until no
    connection carries their mark."""

    def __init__(
        self, initial: Mapping[NextHop, int] | None = None, max_index: int = MAX_INDEX
    ) -> None:
        self.max_index = max_index
        self._by_nh: dict[NextHop, int] = {}
        self._by_mark: dict[int, NextHop] = {}
        self.quarantine: set[int] = set()  # freed slots some connection may still carry
        # called (once) before the first new slot is handed out: the datapath reserves the
        # slots live connections carry, counted at start beside the first pass
        self.before_new: Callable[[], None] | None = None
        for nh, mark in (initial or {}).items():
            self.adopt(nh, mark)

    def _fits(self, slot: int) -> bool:
        return is_dfagent_slot(slot) and (slot & ~SLOT_MASK) <= self.max_index

    def adopt(self, nh: NextHop, mark: int) -> bool:
        """Record an existing allocation; returns False (and ignores it) on a conflict."""
        if not self._fits(mark):
            return False
        if self._by_nh.get(nh) == mark:
            return True
        if nh in self._by_nh or mark in self._by_mark:
            return False
        self._by_nh[nh] = mark
        self._by_mark[mark] = nh
        self.quarantine.discard(mark)
        return True

    def mark(self, nh: NextHop) -> int:
        """The slot of ``nh``, allocating the lowest free one the first time."""
        got = self._by_nh.get(nh)
        if got is not None:
            return got
        if self.before_new is not None:
            self.before_new()
        for idx in range(1, self.max_index + 1):
            m = SLOT_BASE | idx
            if m not in self._by_mark and m not in self.quarantine:
                self._by_nh[nh] = m
                self._by_mark[m] = nh
                return m
        raise MarksExhausted(f"all {self.max_index} dfagent marks are allocated: widen --mark-mask")

    def release(self, nh: NextHop, carried: bool = True) -> int | None:
        """Forget ``nh``'s slot; it is reused only after :meth:`unquarantine` (when
        ``carried``: connections may still carry its mark)."""
        m = self._by_nh.pop(nh, None)
        if m is None:
            return None
        del self._by_mark[m]
        if carried:
            self.quarantine.add(m)
        return m

    def reserve(self, slots: Iterable[int]) -> set[int]:
        """Slots found on live connections but owned by no known next hop: never hand them
        out until the connections are gone. Returns the ones newly reserved."""
        new = {s for s in slots if self._fits(s) and s not in self._by_mark}
        new -= self.quarantine
        self.quarantine |= new
        return new

    def unquarantine(self, carried: Mapping[int, int]) -> set[int]:
        """Free quarantined slots no connection carries (``carried``: slot → entries)."""
        free = {m for m in self.quarantine if not carried.get(m)}
        self.quarantine -= free
        return free

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
