from __future__ import annotations

import pytest

from dfagent.core.marks import (
    MARK_BASE,
    MarkAllocator,
    MarksExhausted,
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


def test_mark_space_default_leaves_common_bits_alone() -> None:
    from dfagent.core.marks import MarkSpace

    sp = MarkSpace()
    assert sp.mask == 0x0FFF0000 and sp.flag == 0x08000000 and sp.max_index == 0x7FF
    assert sp.mark(MARK_BASE | 1) == 0x08010000
    assert sp.mark(MARK_BASE | 0x7FF) == 0x0FFF0000
    for other in (0x4000, 0x8000, 0x3F00, 0xF0000000, 0xFF):  # kube-proxy, mwan3, by hand
        assert not sp.overlaps(other)
    # the slot survives any bits other tools set outside the field
    assert sp.slot(0x08030000 | 0xF000C0FF) == MARK_BASE | 3
    assert sp.slot(0x00030000) is None  # no flag bit: not dfagent's
    assert sp.slot(0x08000000) is None  # index 0 is never allocated
    with pytest.raises(ValueError):
        sp.mark(MARK_BASE | 0x800)  # does not fit 11 index bits


def test_mark_space_custom_low_bits() -> None:
    from dfagent.core.marks import MarkSpace

    sp = MarkSpace(0x000000F0)
    assert sp.flag == 0x80 and sp.max_index == 7
    assert sp.mark(MARK_BASE | 5) == 0xD0 and sp.slot(0x123400D0) == MARK_BASE | 5
    alloc = MarkAllocator(max_index=sp.max_index)
    nhs = [NextHop(4, "e1", f"10.0.0.{i}") for i in range(1, 8)]
    assert [alloc.mark(nh) for nh in nhs] == [MARK_BASE | i for i in range(1, 8)]
    with pytest.raises(MarksExhausted, match="widen --mark-mask"):
        alloc.mark(NextHop(4, "e1", "10.0.0.99"))


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("0x0f0f0000", "contiguous"),
        ("0x00010000", "one bit"),
        ("0", "32-bit"),
        ("0x1ffffffff", "32-bit"),
        ("lots", "not a number"),
    ],
)
def test_parse_mask_errors(text: str, why: str) -> None:
    from dfagent.core.marks import parse_mask

    with pytest.raises(ValueError, match=why):
        parse_mask(text)
