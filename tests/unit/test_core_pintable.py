"""The core pin table (pure, fake clock): room, least-recently-active eviction, adoption,
activity from counters, rejections with retry and backoff, switch-aged and lost pins."""

from __future__ import annotations

from dfagent.core.pintable import INSTALLED, PENDING, REJECTED, Flow, PinTable, Seen
from dfagent.core.ratelimit import TokenBucket


def f(i: int) -> Flow:
    return Flow("198.51.100.7", "192.0.2.10", 10000 + i, 443)


def installed(t: PinTable, now: float, flows: list[tuple[Flow, str]]) -> None:
    ch = t.want(now, flows)
    t.applied(ch.install)


def test_new_pins_install_and_a_retransmitted_syn_only_refreshes() -> None:
    t = PinTable(capacity=10, idle_timeout=300)
    ch = t.want(0.0, [(f(1), "10.0.0.1"), (f(2), "10.0.0.2")])
    assert [p.flow for p in ch.install] == [f(1), f(2)] and not ch.remove
    assert {p.state for p in ch.install} == {PENDING}
    t.applied(ch.install)
    assert t.pins[f(1)].state == INSTALLED
    again = t.want(5.0, [(f(1), "10.0.0.1")])
    assert not again and t.pins[f(1)].last_active == 5.0 and t.stats.refreshed == 1
    moved = t.want(6.0, [(f(1), "10.0.0.3")])  # port reuse toward another server
    assert [p.nexthop for p in moved.remove] == ["10.0.0.1"]
    assert [p.nexthop for p in moved.install] == ["10.0.0.3"] and t.stats.replaced == 1
    assert t.counts() == {"10.0.0.3": 1, "10.0.0.2": 1}


def test_over_capacity_the_least_recently_active_pin_goes() -> None:
    t = PinTable(capacity=3, idle_timeout=300)
    for i in range(3):
        installed(t, float(i), [(f(i), "10.0.0.1")])
    # f(0) is the oldest, but its counter moved at t=10: f(1) is now the least active
    t.observe(10.0, {f(i): Seen("10.0.0.1", 0) for i in range(3)}, foreign=0)
    t.observe(11.0, {f(0): Seen("10.0.0.1", 5), f(1): Seen("10.0.0.1", 0),
                     f(2): Seen("10.0.0.1", 0)}, foreign=0)  # fmt: skip
    assert t.pins[f(0)].last_active == 11.0
    ch = t.want(12.0, [(f(9), "10.0.0.2")])
    assert [p.flow for p in ch.remove] == [f(1)] and t.stats.evicted == 1
    assert f(9) in t.pins and f(1) not in t.pins and t.held() == 3


def test_others_flows_shrink_the_room_and_overflow_is_counted_not_silent() -> None:
    t = PinTable(capacity=5, idle_timeout=300, limit=4)
    t.observe(0.0, {}, foreign=3)
    assert t.room == 2
    ch = t.want(1.0, [(f(i), "10.0.0.1") for i in range(4)])
    # a batch larger than the room: the batch's own pins cannot evict each other
    assert len(ch.install) == 2 and t.stats.overflow == 2
    t.observe(2.0, {}, foreign=0, complete=False)
    assert t.room == 4  # the operator's limit
    t.observe(2.0, {}, foreign=5, complete=False)
    ch = t.want(3.0, [(f(7), "10.0.0.1")])
    # no room at all: ours go (the switch is over-full), and the new pin is counted
    assert not ch.install and len(ch.remove) == 2 and t.stats.overflow == 3


def test_adopts_a_previous_runs_pins_and_clears_aged_ones() -> None:
    t = PinTable(capacity=10, idle_timeout=300)
    ch = t.observe(100.0, {f(1): Seen("10.0.0.1", 7), f(2): Seen("10.0.0.2", 0, expired=True)},
                   foreign=2)  # fmt: skip
    assert t.stats.adopted == 1 and t.pins[f(1)].state == INSTALLED
    assert [p.flow for p in ch.remove] == [f(2)]  # leftover config of an aged-out flow
    assert t.foreign == 2 and t.room == 8


def test_a_pin_gone_while_active_is_put_back_an_idle_one_is_forgotten() -> None:
    t = PinTable(capacity=10, idle_timeout=300)
    installed(t, 0.0, [(f(1), "10.0.0.1"), (f(2), "10.0.0.2")])
    t.pins[f(2)].last_active = -500.0  # idle past the timeout
    ch = t.observe(10.0, {}, foreign=0)  # the switch rebooted: nothing there
    assert [p.flow for p in ch.install] == [f(1)] and t.stats.lost == 1
    assert f(2) not in t.pins and t.stats.expired == 1
    assert t.pins[f(1)].state == PENDING


def test_rejections_are_retried_with_backoff_then_reported() -> None:
    t = PinTable(capacity=10, idle_timeout=300, max_retries=2, retry_backoff=1.0)
    installed(t, 0.0, [(f(1), "10.0.0.1"), (f(2), "10.0.0.1")])
    ch = t.observe(1.0, {f(1): Seen("10.0.0.1", 0), f(2): Seen("10.0.0.1", None, False)},
                   foreign=0)  # fmt: skip
    assert [p.flow for p in ch.remove] == [f(2)] and t.pins[f(2)].state == REJECTED
    assert t.room == 1  # the switch showed one programmed when it said no
    assert t.next_retry() == 2.0 and not t.retries(1.5)
    retry = t.retries(2.0)
    assert retry.install and t.stats.retried == 1
    t.failed(retry.install, 2.1)  # refused again: backoff doubles
    assert t.pins[f(2)].retry_at == 2.1 + 2.0
    t.failed(t.retries(10.0).install, 10.0)
    assert f(2) not in t.pins and t.stats.failed == 1 and t.stats.rejected == 3


def test_agent_side_ageing_for_switches_without_idle_timeouts() -> None:
    t = PinTable(capacity=10, idle_timeout=60)
    installed(t, 0.0, [(f(1), "10.0.0.1"), (f(2), "10.0.0.1")])
    t.want(50.0, [(f(2), "10.0.0.1")])  # its SYN again
    ch = t.age(61.0)
    assert [p.flow for p in ch.remove] == [f(1)] and list(t.pins) == [f(2)]


def test_token_bucket() -> None:
    b = TokenBucket(rate=100, burst=10, now=0.0)
    assert b.take(0.0, 25) == 10 and b.take(0.0, 5) == 0
    assert abs(b.wait(0.0, 5) - 0.05) < 1e-9
    assert b.take(0.05, 25) == 5
