"""MapPinner against a fake nft that models map *state* (conflicts, missing elements)."""

from __future__ import annotations

import re
from typing import Any

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

    def __init__(self) -> None:
        self.maps: dict[str, dict[str, int]] = {"pin4": {}, "pin6": {}}
        self.transactions = 0

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
