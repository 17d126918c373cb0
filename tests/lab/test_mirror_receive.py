"""Receive GRE-mirrored SYNs over a veth pair between two dfw- namespaces (raw-socket sender
in one, MirrorReceiver in the other), IPv4 and IPv6, with the allow-list drop counter."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator

import pytest

from dfagent.lab.mirror_sender import ENCAPS, RawGreSender, mirrored_syn
from dfagent.lab.veth_pair import VethPair, in_netns
from dfagent.mirror.receiver import MirrorReceiver
from dfagent.wire import SynEvent

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def veth() -> Iterator[VethPair]:
    vp = VethPair()
    try:
        vp.open()
        yield vp
    finally:
        vp.close()
        left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert vp.tx not in left and vp.rx not in left


def collect(rx: MirrorReceiver, want: int, timeout: float = 5.0) -> list[SynEvent]:
    got: list[SynEvent] = []
    deadline = time.monotonic() + timeout
    while len(got) < want and time.monotonic() < deadline:
        got += rx.poll_batch(1000, timeout=0.1)
    return got


def test_receive_v4_v6_and_allow_list(veth: VethPair) -> None:
    with in_netns(veth.rx):
        rx = MirrorReceiver([veth.TX4, veth.TX6], queue_size=1000)
        rx.open()
    stop = threading.Event()
    t = threading.Thread(target=rx.run, args=(stop,), daemon=True)
    t.start()
    senders: list[RawGreSender] = []
    try:
        with in_netns(veth.tx):
            s4 = RawGreSender(veth.RX4, veth.TX4)
            s6 = RawGreSender(veth.RX6, veth.TX6)
            bad4 = RawGreSender(veth.RX4, veth.OTHER4)
            bad6 = RawGreSender(veth.RX6, veth.OTHER6)
            senders += [s4, s6, bad4, bad6]
        sent = []
        for i, encap in enumerate(ENCAPS):
            for s, coll in ((s4, veth.RX4), (s6, veth.RX6)):
                src_mirror = veth.TX4 if s is s4 else veth.TX6
                s.send(mirrored_syn(encap, src_mirror, coll, "10.1.1.1", "10.2.2.2", 1000 + i,
                                    80, vlans=(100,), key=i, outer=False))  # fmt: skip
                sent.append((src_mirror, encap))
        for s, coll, m in ((bad4, veth.RX4, veth.OTHER4), (bad6, veth.RX6, veth.OTHER6)):
            for _ in range(3):
                s.send(mirrored_syn("erspan2", m, coll, "10.9.9.9", "10.2.2.2", 5, 80,
                                    outer=False))  # fmt: skip
        # a SYN-ACK and garbage: counted, never raised
        s4.send(mirrored_syn("teb", veth.TX4, veth.RX4, "10.2.2.2", "10.1.1.1", 80, 1000,
                             flags=0x12, outer=False))  # fmt: skip
        s4.send(b"\x00\x07\x88\xbe" + b"\xff" * 30)
        s6.send(b"\x40\x00")

        got = collect(rx, len(sent))
        assert sorted((e.mirror, e.encap) for e in got) == sorted(sent)
        for e in got:
            assert (e.src, e.dst, e.dport, e.gre_key) == ("10.1.1.1", "10.2.2.2", 80,
                                                          e.sport - 1000)  # fmt: skip
            assert e.vlans == ((100,) if e.encap != "ip" else ())

        # the packets after the last SYN (refused, SYN-ACK, garbage) may still be in flight
        def rest_counted() -> bool:
            c = rx.counters
            errors = sum(v for k, v in c.items() if k.startswith("error:gre"))
            return c["drop:not-allowed"] >= 6 and c.get("skip:not-syn", 0) >= 1 and errors >= 2

        deadline = time.monotonic() + 5
        while not rest_counted() and time.monotonic() < deadline:
            time.sleep(0.05)
        c = rx.counters
        assert c["drop:not-allowed"] == 6
        assert c["syn"] == len(sent)
        assert c["skip:not-syn"] == 1
        assert sum(v for k, v in c.items() if k.startswith("error:gre")) == 2
        assert rx.rcvbuf_actual[4] >= 1 << 20 and rx.kernel_drops() == 0
    finally:
        stop.set()
        t.join(5)
        for s in senders:
            s.close()
        rx.close()
    assert not t.is_alive()
