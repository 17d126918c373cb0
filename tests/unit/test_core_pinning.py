"""Reconcile decisions with a fake clock: drained keeps pins, dead releases, GC when empty."""

from __future__ import annotations

from dfagent.core.marks import MARK_BASE
from dfagent.core.nexthops import NextHop
from dfagent.core.pinning import ACTIVE, DEAD, DRAINED, Event, Planner

VIP = "1.1.1.1/32"
S1 = NextHop(4, "r1", "10.0.1.2")
S2 = NextHop(4, "r2", "10.0.2.2")
S3 = NextHop(4, "r3", "10.0.3.2")
M1, M2, M3 = MARK_BASE | 1, MARK_BASE | 2, MARK_BASE | 3


def alive_all(nh: NextHop) -> bool:
    return True


def kinds(events: list[Event]) -> list[tuple[str, NextHop]]:
    return [(e.kind, e.nexthop) for e in events]


def test_new_members_get_marks_rules_tables_and_map_entries() -> None:
    p = Planner()
    plan, ev = p.step(0.0, {VIP: [S1, S2, S3]}, alive_all, None)
    assert kinds(ev) == [("added", S1), ("added", S2), ("added", S3)]
    assert plan.nh_map == {S1: M1, S2: M2, S3: M3}
    assert plan.rules == {M1: 4, M2: 4, M3: 4}
    assert plan.routes == {(M1, VIP, S1), (M2, VIP, S2), (M3, VIP, S3)}
    assert plan.released == frozenset()


def test_drained_nexthop_keeps_table_while_pinned_then_goes() -> None:
    p = Planner(gc_grace=5)
    p.step(0.0, {VIP: [S1, S2, S3]}, alive_all, {M1: 4, M2: 3})
    plan, ev = p.step(1.0, {VIP: [S2, S3]}, alive_all, {M1: 4, M2: 3})
    assert kinds(ev) == [("drained", S1)]
    assert S1 not in plan.nh_map  # no new connection records it
    assert M1 in plan.rules and (M1, VIP, S1) in plan.routes  # pinned ones still route
    assert p.records[S1].state == DRAINED
    # pins drain away; kept for the grace period, then removed
    plan, ev = p.step(2.0, {VIP: [S2, S3]}, alive_all, {M2: 3})
    assert M1 in plan.rules and ev == []
    plan, ev = p.step(6.9, {VIP: [S2, S3]}, alive_all, {M2: 3})
    assert M1 in plan.rules
    plan, ev = p.step(7.0, {VIP: [S2, S3]}, alive_all, {M2: 3})
    assert kinds(ev) == [("removed", S1)]
    assert M1 not in plan.rules and all(r[0] != M1 for r in plan.routes)
    # it comes back: same mark as before
    plan, ev = p.step(8.0, {VIP: [S1, S2, S3]}, alive_all, None)
    assert plan.nh_map[S1] == M1


def test_no_gc_without_a_count() -> None:
    p = Planner(gc_grace=0)
    p.step(0.0, {VIP: [S1, S2]}, alive_all, None)
    plan, ev = p.step(100.0, {VIP: [S2]}, alive_all, None)
    assert M1 in plan.rules  # never counted: keep


def test_dead_nexthop_is_released_and_removed_when_unpinned() -> None:
    p = Planner()
    p.step(0.0, {VIP: [S1, S2]}, alive_all, {M1: 2, M2: 2})
    p.step(1.0, {VIP: [S2]}, alive_all, {M1: 2, M2: 2})
    dead = {S1}
    plan, ev = p.step(2.0, {VIP: [S2]}, lambda nh: nh not in dead, {M1: 2, M2: 2})
    assert kinds(ev) == [("dead", S1)]
    assert p.records[S1].state == DEAD
    assert M1 in plan.released and M1 not in plan.rules and S1 not in plan.nh_map
    plan, ev = p.step(3.0, {VIP: [S2]}, lambda nh: nh not in dead, {M2: 2})
    assert kinds(ev) == [("removed", S1)]
    assert plan.released == frozenset()


def test_dead_member_still_in_ecmp_is_kept_released_and_revives() -> None:
    p = Planner()
    p.step(0.0, {VIP: [S1, S2]}, alive_all, {})
    dead = {S1}
    plan, _ = p.step(1.0, {VIP: [S1, S2]}, lambda nh: nh not in dead, {})
    assert M1 in plan.released and S1 not in plan.nh_map and S1 in p.records
    dead.clear()
    plan, ev = p.step(2.0, {VIP: [S1, S2]}, alive_all, {})
    assert kinds(ev) == [("revived", S1)]
    assert plan.nh_map[S1] == M1 and M1 in plan.rules and not plan.released
    assert p.records[S1].state == ACTIVE


def test_adopted_nexthops_are_kept_until_counted_empty() -> None:
    p = Planner(gc_grace=1)
    p.marks.adopt(S1, M3)
    p.adopt(S1, [VIP], now=0.0)
    plan, _ = p.step(0.5, {VIP: [S2]}, alive_all, {M3: 1})
    assert plan.rules[M3] == 4 and (M3, VIP, S1) in plan.routes
    plan, ev = p.step(5.0, {VIP: [S2]}, alive_all, {})
    plan, ev = p.step(6.5, {VIP: [S2]}, alive_all, {})
    assert kinds(ev) == [("removed", S1)]


def test_dead_nexthop_forgotten_after_dead_hold_even_with_idle_entries() -> None:
    p = Planner(dead_hold=10)
    p.step(0.0, {VIP: [S1, S2]}, alive_all, {M1: 3})
    dead = {S1}
    plan, _ = p.step(1.0, {VIP: [S2]}, lambda nh: nh not in dead, {M1: 3})
    assert M1 in plan.released
    plan, ev = p.step(10.9, {VIP: [S2]}, lambda nh: nh not in dead, {M1: 3})
    assert ev == [] and S1 in p.records
    plan, ev = p.step(11.0, {VIP: [S2]}, lambda nh: nh not in dead, {M1: 3})
    assert kinds(ev) == [("removed", S1)]
    # 3 idle entries still carry M1: it stays released (cleared on their next packet) and
    # no new next hop gets it until a count shows none left
    assert plan.released == {M1}
    plan, ev = p.step(12.0, {VIP: [S2, S3]}, alive_all, {M1: 3})
    assert plan.nh_map[S3] == M3 and M1 in plan.released
    plan, ev = p.step(13.0, {VIP: [S2, S3]}, alive_all, {})
    assert not plan.released and M1 not in p.marks.quarantine


def test_forgotten_nexthop_frees_its_mark() -> None:
    """A next hop gone (no pins, past the grace) gives its mark back: marks do not pile up
    for every next hop ever seen (53 reserved for 8 live after a few lab restarts)."""
    p = Planner(gc_grace=2)
    p.step(0.0, {VIP: [S1, S2]}, alive_all, {})
    p.step(1.0, {VIP: [S2]}, alive_all, {})
    _, ev = p.step(3.5, {VIP: [S2]}, alive_all, {})
    assert kinds(ev) == [("removed", S1)]
    assert p.marks.get(S1) is None
    plan, ev = p.step(4.0, {VIP: [S2, S3]}, alive_all, {})
    assert plan.nh_map == {S2: M2, S3: M1}  # the lowest free mark again


def test_marks_on_live_entries_owned_by_nobody_are_never_handed_out() -> None:
    """After a crash or a cleanup, entries may carry a mark no known next hop owns: reserved
    (and released, so those connections re-record) until they are gone."""
    p = Planner()
    assert p.marks.reserve({M1: 5}) == {M1}
    plan, _ = p.step(0.0, {VIP: [S1]}, alive_all, {M1: 5})
    assert plan.nh_map == {S1: M2} and plan.released == {M1}
    plan, _ = p.step(1.0, {VIP: [S1, S2]}, alive_all, {})
    assert plan.nh_map == {S1: M2, S2: M1} and not plan.released


def test_a_zero_count_from_before_the_death_does_not_remove_a_next_hop() -> None:
    """Counted 0 at start, then connections arrive and the next hop dies in a round with no
    count: it must wait for a fresh count (it was removed at once, its mark freed while
    connections still carried it)."""
    p = Planner(dead_hold=30)
    p.step(0.0, {VIP: [S1, S2]}, alive_all, {})
    dead = {S1}
    plan, ev = p.step(1.0, {VIP: [S2]}, lambda nh: nh not in dead, None)
    assert kinds(ev) == [("drained", S1), ("dead", S1)] and S1 in p.records
    plan, ev = p.step(2.0, {VIP: [S2]}, lambda nh: nh not in dead, {M1: 7})
    assert S1 in p.records and M1 in plan.released
    plan, ev = p.step(3.0, {VIP: [S2]}, lambda nh: nh not in dead, {})
    assert kinds(ev) == [("removed", S1)]
