"""MapPinner against a fake nft that models map *state* (conflicts, missing elements)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from dfagent.backends.linux.mapmode import MapPinner, resolver_from
from dfagent.backends.linux.nft import NftError
from dfagent.core.pinbatch import MicroBatcher, PinItem

M1, M2 = 0x0DFA0001, 0x0DFA0002
STMT = re.compile(r"(add|delete|get) element inet dfagent (\w+) \{ (.*) \}")


def slot_of(verdict: str) -> int:
    """``jump pin_0dfa0001`` → 0x0dfa0001 (elements jump to their slot's chain)."""
    m = re.fullmatch(r"jump pin_([0-9a-f]{8})", verdict)
    assert m, verdict
    return int(m.group(1), 16)


class FakeNft:
    """Transactions are all-or-nothing, like the kernel's."""

    def __init__(self, size: int | None = None) -> None:
        self.maps: dict[str, dict[str, int]] = {"pin4": {}, "pin6": {}}
        self.transactions = 0
        self.size = size  # the maps' declared size: a full map refuses new elements

    def run(self, script: str) -> str:
        self.transactions += 1
        new = {k: dict(v) for k, v in self.maps.items()}
        out = ""
        for line in script.strip().splitlines():
            m = STMT.fullmatch(line.strip())
            assert m, line
            verb, name, body = m.groups()
            for elem in body.split(", "):
                key, _, val = elem.partition(" : ")
                if verb == "add":
                    if key in new[name] and new[name][key] != slot_of(val):
                        raise NftError(script, 1, "File exists")
                    new[name][key] = slot_of(val)
                    if self.size is not None and len(new[name]) > self.size:
                        raise NftError(script, 1, "Too many open files in system")
                elif verb == "delete":
                    if key not in new[name]:
                        raise NftError(script, 1, "No such file or directory")
                    del new[name][key]
                else:
                    if key not in new[name]:
                        raise NftError(script, 1, "No such file or directory")
                    out += f"elements = {{ {key} : jump pin_{new[name][key]:08x} }}"
        self.maps = new
        return out

    def run_json(self, command: str) -> list[dict[str, Any]]:
        raise AssertionError("not used")


class Clock:
    t = 0.0

    def __call__(self) -> float:
        return self.t


def make() -> tuple[FakeNft, MapPinner, Clock]:
    nft = FakeNft()
    clock = Clock()
    marks = {(4, "10.0.1.2"): M1, (4, "10.0.2.2"): M2, (6, "fd00:1::2"): M1}
    pinner = MapPinner(nft, resolver_from(marks), timeout=60, clock=clock)
    return nft, pinner, clock


def flows(n: int, nh: str = "10.0.1.2") -> list[PinItem]:
    return [PinItem("10.0.0.2", "1.1.1.1", 1000 + i, 80, nh) for i in range(n)]


def test_one_transaction_per_batch_and_families_split() -> None:
    nft, p, _ = make()
    st = p.pin([*flows(100), PinItem("fd00::2", "2001:db8::1", 5, 80, "fd00:1::2%r1")])
    assert st.pinned == 101 and nft.transactions == 2
    assert len(nft.maps["pin4"]) == 100 and len(nft.maps["pin6"]) == 1
    assert p.lookup("10.0.0.2", "1.1.1.1", 1000, 80) == M1


def test_unknown_nexthop_is_counted_not_pinned() -> None:
    nft, p, _ = make()
    st = p.pin(flows(3, nh="192.0.2.1"))
    assert st.unknown_nexthop == 3 and st.pinned == 0 and nft.transactions == 0


def test_conflict_is_found_by_halving_and_replaced() -> None:
    nft, p, _ = make()
    p.pin(flows(64))
    batch = flows(64)
    batch[37] = batch[37]._replace(nexthop="10.0.2.2")  # port reuse towards another hop
    st = p.pin(batch)
    assert st.pinned == 64 and st.replaced == 1 and st.failed == 0
    assert nft.maps["pin4"]["10.0.0.2 . 1.1.1.1 . 1037 . 80"] == M2
    assert nft.transactions < 30  # log-depth, not one per element


def test_unpin_ignores_expired_elements() -> None:
    nft, p, _ = make()
    p.pin(flows(10))
    del nft.maps["pin4"]["10.0.0.2 . 1.1.1.1 . 1003 . 80"]  # expired in the kernel
    assert p.unpin([f[:4] for f in flows(10)]) == 9
    assert nft.maps["pin4"] == {}


def test_count_follows_timeout_and_unpin() -> None:
    _, p, clock = make()
    p.pin(flows(10))
    clock.t = 30
    p.pin(flows(20)[10:])
    assert p.count() == 20
    p.unpin([f[:4] for f in flows(2)])
    assert p.count() == 18
    clock.t = 61
    assert p.count() == 8  # the first batch aged out (unpins are not per batch)
    clock.t = 200
    assert p.count() == 0


def test_micro_batcher_flushes_on_size_and_delay() -> None:
    nft, p, _ = make()
    b = MicroBatcher(p, max_items=4, max_delay=0.002)
    items = flows(6)
    for i, it in enumerate(items[:4]):
        flushed = b.add(it, now=0.0)
        assert flushed == (i == 3)
    b.add(items[4], now=1.0)
    assert not b.poll(1.001)
    assert b.poll(1.0021)
    assert len(nft.maps["pin4"]) == 5


def test_table_json_is_dfagent_table_from_a_terse_ruleset_listing() -> None:
    """`list table`/`list chain` make nft 1.0.6 fetch every pin; the terse ruleset does not."""
    from dfagent.backends.linux.nft import Nft

    asked: list[tuple[str, bool]] = []
    ruleset: list[dict[str, Any]] = [
        {"metainfo": {"version": "1.0.6"}},
        {"table": {"family": "inet", "name": "fw", "handle": 1}},
        {"chain": {"family": "inet", "table": "fw", "name": "pre", "handle": 1}},
        {"table": {"family": "ip", "name": "dfagent", "handle": 2}},  # another family
        {"table": {"family": "inet", "name": "dfagent", "handle": 3}},
        {"map": {"family": "inet", "table": "dfagent", "name": "pin4", "handle": 2}},
        {"rule": {"family": "inet", "table": "dfagent", "chain": "pre", "expr": []}},
        {"counter": {"family": "inet", "table": "dfagent", "name": "probe", "packets": 5}},
        {"counter": {"family": "inet", "table": "fw", "name": "probe", "packets": 9}},
    ]
    nft = Nft.__new__(Nft)

    def run_json(command: str, terse: bool = False) -> list[dict[str, Any]]:
        asked.append((command, terse))
        return ruleset

    nft.run_json = run_json  # type: ignore[method-assign]
    got = nft.table_json()
    assert asked == [("list ruleset", True)]
    asked.clear()
    assert [next(iter(i)) for i in got] == ["table", "map", "rule", "counter"]
    assert nft.counters() == {"probe": 5}
    assert all(next(iter(i.values()))["family"] == "inet" for i in got)
    assert nft.table_exists()
    assert set(asked) == {("list ruleset", True)}
    del ruleset[4:]
    assert not nft.table_exists()
    with pytest.raises(NftError, match="No such file"):
        nft.table_json()


class FakeMarker:
    """Conntrack marks behind the pins (what makes eviction safe)."""

    def mark(self, flows: Any) -> Any:
        n = len(list(flows))
        return type("Out", (), {"updated": n, "failed": 0, "error": None})()

    def close(self) -> None:
        pass


def make_sized(size: int) -> tuple[FakeNft, MapPinner, Clock]:
    nft, clock = FakeNft(size), Clock()
    marks = {(4, "10.0.1.2"): M1, (4, "10.0.2.2"): M2}
    pinner = MapPinner(
        nft, resolver_from(marks), timeout=60, clock=clock,
        marker=FakeMarker(), capacity=size,  # type: ignore[arg-type]
    )  # fmt: skip
    return nft, pinner, clock


def test_full_map_evicts_the_oldest_pins() -> None:
    nft, p, clock = make_sized(10)
    p.pin(flows(8))
    clock.t = 1
    st = p.pin(flows(12)[8:])  # 4 new, 2 over
    assert st.pinned == 4 and st.evicted == 2 and st.failed == 0
    keys = set(nft.maps["pin4"])
    assert len(keys) == 10
    # the two written first are gone, the newest are all there
    assert "10.0.0.2 . 1.1.1.1 . 1000 . 80" not in keys
    assert "10.0.0.2 . 1.1.1.1 . 1001 . 80" not in keys
    assert "10.0.0.2 . 1.1.1.1 . 1011 . 80" in keys
    # pins already in the map take no room; timed-out ones free theirs without eviction
    assert p.pin(flows(12)[8:]).evicted == 0
    clock.t = 62
    nft.maps["pin4"].clear()  # timed out in the kernel
    st = p.pin([PinItem("10.0.0.3", "1.1.1.1", 7, 80, "10.0.1.2")])
    assert st.evicted == 0 and st.pinned == 1


def test_full_map_without_marks_refuses() -> None:
    """One direction (no conntrack behind the pin): an evicted element is a moved flow, so a
    full map refuses new pins instead."""
    nft, clock = FakeNft(4), Clock()
    p = MapPinner(nft, resolver_from({(4, "10.0.1.2"): M1}), timeout=60, clock=clock, capacity=4)
    st = p.pin(flows(6))
    assert st.pinned == 4 and st.failed == 2 and st.evicted == 0


def test_batch_history_stays_bounded_without_count() -> None:
    """The per-batch history behind count() is trimmed by pinning itself: an agent that never
    asks for the count (the mirror path) must not grow with every batch."""
    _, p, clock = make()
    for i in range(10000):
        clock.t = i / 10  # ten batches a second: one history entry a second
        p.pin([PinItem("10.0.0.2", "1.1.1.1", 1000 + i % 60000, 80, "10.0.1.2")])
    assert len(p._written) <= 61 and 590 <= p.count() <= 610  # the last 60 s, to a second
