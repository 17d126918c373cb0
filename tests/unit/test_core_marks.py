from __future__ import annotations

import pytest

from dfagent.core.marks import (
    MARK_BASE,
    MarkAllocator,
    is_dfagent_mark,
    is_dfagent_table,
)
from dfagent.core.nexthops import NextHop, parse_vip

A = NextHop(4, "eth1", "10.0.1.2")
B = NextHop(4, "eth2", "10.0.2.2")
C = NextHop(6, "eth1", "fd00:1::2")


def test_lowest_free_mark_and_stable() -> None:
    alloc = MarkAllocator()
    assert alloc.mark(A) == MARK_BASE | 1
    assert alloc.mark(B) == MARK_BASE | 2
    assert alloc.mark(A) == MARK_BASE | 1
    assert alloc.nexthop(MARK_BASE | 2) == B


def test_round_trip_through_state_file_gives_same_marks() -> None:
    alloc = MarkAllocator()
    for nh in (A, B, C):
        alloc.mark(nh)
    again = MarkAllocator.from_json(alloc.to_json())
    assert [again.mark(nh) for nh in (C, B, A)] == [MARK_BASE | 3, MARK_BASE | 2, MARK_BASE | 1]


def test_adopt_kernel_allocation_and_reject_conflicts() -> None:
    alloc = MarkAllocator()
    assert alloc.adopt(B, MARK_BASE | 7)
    assert not alloc.adopt(A, MARK_BASE | 7)  # mark taken
    assert not alloc.adopt(B, MARK_BASE | 8)  # next hop already has one
    assert not alloc.adopt(A, 0x1234)  # not ours
    assert alloc.mark(A) == MARK_BASE | 1
    assert alloc.mark(B) == MARK_BASE | 7


def test_owner_ranges() -> None:
    assert is_dfagent_mark(MARK_BASE | 5)
    assert not is_dfagent_mark(MARK_BASE)
    assert not is_dfagent_mark(5)
    assert not is_dfagent_table(254)


def test_nexthop_normalises_and_round_trips() -> None:
    nh = NextHop(6, "eth1", "FD00:1:0::2")
    assert nh.gateway == "fd00:1::2"
    assert NextHop.from_key(nh.key()) == nh
    assert NextHop(4, "e1", "fe80::1").via_v6_for_v4
    with pytest.raises(ValueError):
        NextHop(5, "e1", "10.0.0.1")
    with pytest.raises(ValueError):
        parse_vip("1.1.1.1/24")
