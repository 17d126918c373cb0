"""`dfagent bench decode`: decode rate of dfagent.wire vs scapy on the same mixed corpus.

Target (issue 3): ≥ 1,000,000 SYNs/s for dfagent on one core and ≥ 200× scapy. The decoders
run in this process, in alternating rounds, on the same bytes: `dfagent.wire.decode_mirror`
as the agent runs it (the C accelerator when it is built, see `dfagent.wire.IMPLEMENTATION`),
the pure-Python decoder alone (`decode_mirror_py`, so the C/Python ratio stays visible), and
scapy. The corpus mixes the shapes switches send (see CORPUS_SHAPES); each shape is also timed
on its own.
"""

from __future__ import annotations

import platform
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

from dfagent.lab.mirror_sender import Encap, mirrored_syn
from dfagent.wire import IMPLEMENTATION, SynEvent, decode_mirror, decode_mirror_py

TARGET_PPS = 1_000_000
TARGET_RATIO = 200

# (name, encap, outer family, inner family, vlans, gre key)
CORPUS_SHAPES: tuple[tuple[str, Encap, int, int, tuple[int, ...], int | None], ...] = (
    ("erspan1 v4", "erspan1", 4, 4, (), None),
    ("erspan1 v4 vlan", "erspan1", 4, 4, (100,), None),
    ("erspan1 v6", "erspan1", 4, 6, (), None),
    ("erspan2 v4", "erspan2", 4, 4, (), None),
    ("erspan2 v4 vlan", "erspan2", 4, 4, (200,), None),
    ("erspan3 v4", "erspan3", 4, 4, (), None),
    ("teb v4 vlan", "teb", 4, 4, (300,), None),
    ("ip v4 (GRE 0x0800)", "ip", 4, 4, (), None),
    ("raw IPv4 in 0x88BE + key (7280R3)", "ip", 4, 4, (), 0x12345678),
    ("erspan2 v4 over outer IPv6", "erspan2", 6, 4, (), None),
)


def build_shape(
    shape: tuple[str, Encap, int, int, tuple[int, ...], int | None], n: int, rng: random.Random
) -> list[bytes]:
    name, encap, ofam, ifam, vlans, key = shape
    out = []
    for _ in range(n):
        if ifam == 4:
            src = f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
            dst = f"192.0.2.{rng.randrange(1, 255)}"
        else:
            src = f"2001:db8:{rng.randrange(65536):x}::{rng.randrange(1, 65536):x}"
            dst = f"2001:db8:ffff::{rng.randrange(1, 255):x}"
        mirror, collector = ("5.5.5.5", "9.9.9.9") if ofam == 4 else ("2001:db8::5", "2001:db8::9")
        sport, dport = rng.randrange(1024, 65536), rng.choice((80, 443, 8443))
        if name.startswith("raw IPv4 in 0x88BE"):
            # what a Jericho2 7280CR3A sends: GRE with a key, 0x88BE, then the IP packet
            from dfagent.lab.mirror_sender import gre_header, inner_syn, ipv4_packet, pack_addr

            _t, inner = inner_syn(src, dst, sport, dport)
            gre = gre_header(0x88BE, key=key) + inner
            out.append(ipv4_packet(pack_addr(mirror), pack_addr(collector), 47, gre))
            continue
        out.append(
            mirrored_syn(
                encap, mirror, collector, src, dst, sport, dport, vlans=vlans, key=key,
                session=rng.randrange(1, 1024), seq=rng.randrange(1 << 32),
            )
        )  # fmt: skip
    return out


def build_corpus(per_shape: int = 200, seed: int = 1) -> tuple[list[bytes], dict[str, list[bytes]]]:
    rng = random.Random(seed)
    by_shape = {s[0]: build_shape(s, per_shape, rng) for s in CORPUS_SHAPES}
    mixed = [p for i in range(per_shape) for ps in by_shape.values() for p in ps[i : i + 1]]
    return mixed, by_shape


def rate(fn: Callable[[Sequence[bytes]], int], corpus: Sequence[bytes], seconds: float) -> float:
    """Packets/s of one round of at least `seconds`."""
    n = 0
    t0 = time.perf_counter()
    while True:
        n += fn(corpus)
        dt = time.perf_counter() - t0
        if dt >= seconds:
            return n / dt


def _runner(d: Callable[[bytes], object]) -> Callable[[Sequence[bytes]], int]:
    def run(corpus: Sequence[bytes]) -> int:
        syns = 0
        for b in corpus:
            if d(b).__class__ is SynEvent:
                syns += 1
        if syns != len(corpus):
            raise RuntimeError(f"dfagent decoded {syns} SYNs out of {len(corpus)}")
        return syns

    return run


run_dfagent = _runner(decode_mirror)  # what the agent runs: C when built, else Python
run_python = _runner(decode_mirror_py)  # the pure-Python decoder alone


class ScapyMissing(RuntimeError):
    pass


def _scapy_decoder() -> Callable[[Sequence[bytes]], int]:
    # scapy is the yardstick of this bench only (the agent never imports it): an extra
    try:
        from scapy.contrib import erspan  # noqa: F401  (binds ERSPAN I/II/III to GRE)
        from scapy.layers.inet import IP, TCP
        from scapy.layers.inet6 import IPv6
    except ImportError:
        raise ScapyMissing(
            "`dfagent bench decode` compares with scapy, which is not installed: "
            "pip install 'dfagent[bench]'"
        ) from None

    def run_scapy(corpus: Sequence[bytes]) -> int:
        syns = 0
        for b in corpus:
            pkt = IP(b) if b[0] >> 4 == 4 else IPv6(b)
            tcp = pkt.getlayer(TCP)
            if tcp is not None and tcp.flags & 0x12 == 0x02:
                syns += 1
        return syns

    return run_scapy


def measure(seconds: float = 3.0, per_shape: int = 200) -> dict[str, Any]:
    mixed, by_shape = build_corpus(per_shape)
    run_scapy = _scapy_decoder()
    # scapy finds every SYN but the raw-IP-in-0x88BE ones (it parses them as Ethernet); it
    # still dissects every packet, so the comparison stays fair.
    scapy_found = run_scapy(mixed)
    scapy_corpus = mixed[: min(len(mixed), 400)]
    c = IMPLEMENTATION == "c"
    # Alternate the decoders and keep each one's best round, so that load from other
    # processes on a shared machine hits them alike.
    dfa = pyr = sca = 0.0
    for _ in range(3):
        dfa = max(dfa, rate(run_dfagent, mixed, seconds / 3))
        if c:
            pyr = max(pyr, rate(run_python, mixed, seconds / 6))
        sca = max(sca, rate(run_scapy, scapy_corpus, max(0.5, seconds / 6)))
    if not c:
        pyr = dfa
    shapes = {
        name: round(max(rate(run_dfagent, ps, seconds / 10) for _ in range(2)))
        for name, ps in by_shape.items()
    }
    py_shapes = (
        {name: round(rate(run_python, ps, seconds / 10)) for name, ps in by_shape.items()}
        if c
        else shapes
    )
    return {
        "python": platform.python_version(),
        "implementation": IMPLEMENTATION,
        "corpus_packets": len(mixed),
        "dfagent_syns_per_s": round(dfa),
        "python_syns_per_s": round(pyr),
        "c_over_python": round(dfa / pyr, 1),
        "scapy_syns_per_s": round(sca),
        "ratio": round(dfa / sca, 1),
        "python_over_scapy": round(pyr / sca, 1),
        "scapy_found_syns": f"{scapy_found}/{len(mixed)}",
        "target_syns_per_s": TARGET_PPS,
        "target_ratio": TARGET_RATIO,
        "meets_rate": dfa >= TARGET_PPS,
        "meets_ratio": dfa / sca >= TARGET_RATIO,
        "per_shape_syns_per_s": shapes,
        "per_shape_python_syns_per_s": py_shapes,
    }


IMPL_TEXT = {
    "c": "C accelerator (dfagent/wire/_fastsyn.c)",
    "python": "pure Python (the C accelerator is not built, or DFAGENT_WIRE_PURE=1)",
}
