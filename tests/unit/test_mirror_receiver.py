"""MirrorReceiver logic without root: fake sockets feed the drain loops."""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from dfagent.lab.mirror_sender import mirrored_syn
from dfagent.mirror.receiver import MirrorReceiver

CORPUS = Path(__file__).resolve().parents[1] / "data" / "mirror_corpus.jsonl"
CASES = [json.loads(line) for line in CORPUS.read_text().splitlines()]


class FakeSock:
    """recv/recvfrom return queued packets, then raise BlockingIOError."""

    def __init__(self, packets: list[bytes], src6: str = "2001:db8::5") -> None:
        self.packets = list(packets)
        self.src6 = src6

    def recv(self, n: int) -> bytes:
        if not self.packets:
            raise BlockingIOError
        return self.packets.pop(0)[:n]

    def recvfrom(self, n: int) -> tuple[bytes, tuple[str, int, int, int]]:
        return self.recv(n), (self.src6, 0, 0, 0)

    def fileno(self) -> int:
        return -1  # never polled: the tests call drain() themselves

    def close(self) -> None:
        pass


def rx_with(
    packets4: list[bytes], packets6: Sequence[bytes] = (), src6: str = "2001:db8::5", **kw: Any
) -> MirrorReceiver:
    rx = MirrorReceiver(kw.pop("sources", ["5.5.5.5", "2001:db8::5"]), **kw)
    rx.sock4 = FakeSock(packets4)
    rx.sock6 = FakeSock(list(packets6), src6) if packets6 else None
    return rx


def syn(mirror: str = "5.5.5.5", sport: int = 1000) -> bytes:
    return mirrored_syn("erspan2", mirror, "9.9.9.9", "10.0.0.1", "10.0.0.2", sport, 80)


def test_counts_every_outcome_and_never_raises() -> None:
    packets = [bytes.fromhex(c["hex"]) for c in CASES if c["hex"][:1] == "4"]
    rx = rx_with(packets, batch=100000)
    events = rx.drain()
    c = rx.counters
    want_syn = sum(
        1 for x in CASES if x["hex"][:1] == "4" and "syn" in x["expect"] and
        x["expect"]["syn"]["mirror"] == "5.5.5.5"
    )  # fmt: skip
    assert len(events) == c["syn"] == want_syn
    assert c["packets"] == len(packets)
    assert c["skip:not-syn"] >= 1 and c["skip:fragment"] >= 1
    assert any(k.startswith("error:gre: ") for k in c)
    assert c.get("error:internal", 0) == 0
    # every packet is accounted for exactly once
    outcomes = sum(v for k, v in c.items() if k.startswith(("skip:", "error:")))
    assert c["syn"] + outcomes + c["drop:not-allowed"] == c["packets"]


def test_random_garbage_never_raises() -> None:
    rng = random.Random(3)
    junk = [bytes(rng.randrange(256) for _ in range(rng.randrange(0, 120))) for _ in range(2000)]
    junk = [b"\x45" + j[1:] if j and i % 2 else j for i, j in enumerate(junk)]
    rx = rx_with(junk, junk, sources=None, batch=10000)
    rx.drain()
    assert rx.counters["packets"] == 4000
    assert rx.counters.get("error:internal", 0) == 0


def test_allow_list_drops_and_counts() -> None:
    rx = rx_with([syn("5.5.5.5"), syn("6.6.6.6"), syn("6.6.6.6")])
    events = rx.drain()
    assert [e.mirror for e in events] == ["5.5.5.5"]
    assert rx.counters["drop:not-allowed"] == 2


def test_ipv6_mirror_address_comes_from_recvfrom() -> None:
    gre = mirrored_syn("erspan1", "2001:db8::5", "2001:db8::9", "10.0.0.1", "10.0.0.2", 7, 80,
                       outer=False)  # fmt: skip
    rx = rx_with([], [gre, gre], src6="2001:db8::5")
    events = rx.drain()
    assert [e.mirror for e in events] == ["2001:db8::5", "2001:db8::5"]
    other = rx_with([], [gre], src6="2001:db8::6")
    assert other.drain() == [] and other.counters["drop:not-allowed"] == 1


def test_batch_limit() -> None:
    rx = rx_with([syn(sport=i) for i in range(10)], batch=4)
    assert len(rx.drain()) == 4
    assert len(rx.drain()) == 4
    assert len(rx.drain()) == 2


@pytest.mark.parametrize("policy", ["newest", "oldest"])
def test_bounded_queue_drop_policy(policy: str) -> None:
    rx = rx_with([syn(sport=i) for i in range(10)], queue_size=4, drop=policy)
    rx.enqueue(rx.drain())
    assert rx.qsize() == 4
    assert rx.counters["drop:queue-full"] == 6
    ports = [e.sport for e in rx.poll_batch(100)]
    assert ports == ([0, 1, 2, 3] if policy == "newest" else [6, 7, 8, 9])
    assert rx.poll_batch(100) == []


def test_poll_batch_waits_for_the_producer() -> None:
    rx = rx_with([])
    t = threading.Timer(0.05, lambda: rx.enqueue(rx_with([syn()]).drain()))
    t.start()
    got = rx.poll_batch(10, timeout=5)
    t.join()
    assert len(got) == 1


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        MirrorReceiver(None, queue_size=0)
    with pytest.raises(ValueError):
        MirrorReceiver(None, drop="random")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        MirrorReceiver(["not an address"])


def test_chunks_keep_their_read_time_through_drops_and_partial_polls() -> None:
    rx = rx_with([], queue_size=5, drop="oldest")
    evs = rx_with([syn(sport=i) for i in range(7)]).drain()
    rx.enqueue(evs[:3], received=1.0)
    rx.enqueue(evs[3:5], received=2.0)
    rx.enqueue(evs[5:7], received=3.0)  # 7 for 5 places: the two oldest go
    assert rx.qsize() == 5 and rx.counters["drop:queue-full"] == 2
    got = rx.poll_stamped(2)  # a chunk split at the limit keeps its time for the rest
    assert [(t, [e.sport for e in e_]) for t, e_ in got] == [(1.0, [2]), (2.0, [3])]
    assert rx.qsize() == 3
    got = rx.poll_stamped(10)
    assert [(t, [e.sport for e in e_]) for t, e_ in got] == [(2.0, [4]), (3.0, [5, 6])]
    assert rx.qsize() == 0 and rx.poll_stamped(10) == []


def test_sources_can_be_replaced_while_running() -> None:
    rx = rx_with([syn(mirror="6.6.6.6"), syn(mirror="6.6.6.6")], sources=["5.5.5.5"], batch=1)
    assert rx.drain() == [] and rx.counters["drop:not-allowed"] == 1
    rx.set_sources(["6.6.6.6", "2001:db8::6"])
    assert len(rx.drain()) == 1
    rx.set_sources(None)
    assert rx.allowed is None
