"""The C accelerator of dfagent.wire (dfagent/wire/_fastsyn.c) against the pure-Python decoders.

The C code returns a SynEvent or a Skip singleton, or hands the packet to the Python decoder
(decode_mirror_py / decode_gre_py), which then answers, errors included. These tests check
that the answer is the same as the pure-Python one (value, skip, or DecodeError with the same
layer, offset, reason and detail) on every golden case and on fuzzed input, that the C code
really decides the usual shapes itself (else "same answer" would prove nothing), and that it
does not leak.

Without the extension these tests skip — except under DFAGENT_REQUIRE_LAB=1 (CI), where a
missing extension fails them: CI must run the decoder that production runs.
"""

from __future__ import annotations

import json
import os
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dfagent.bench.decode import build_corpus
from dfagent.lab.mirror_sender import (
    checksum,
    erspan2_header,
    erspan3_header,
    ether_frame,
    gre_header,
    inner_syn,
    ipv4_packet,
    ipv6_packet,
    pack_addr,
)
from dfagent.wire import (
    SKIP_FRAGMENT,
    SKIP_NOT_IP,
    SKIP_NOT_SYN,
    SKIP_NOT_TCP,
    DecodeError,
    Skip,
    SynEvent,
    decode_gre_py,
    decode_mirror_py,
    decode_slow,
    syn,
)
from dfagent.wire.ip import parse_ipv4, parse_ipv6

CORPUS = Path(__file__).resolve().parents[1] / "data" / "mirror_corpus.jsonl"
CASES = [json.loads(line) for line in CORPUS.read_text().splitlines() if line.strip()]
RAW = [bytes.fromhex(c["hex"]) for c in CASES]
SOURCE = Path(syn.__file__).with_name("_fastsyn.c")


def fastsyn() -> Any:
    """The configured extension module; skip (or, under DFAGENT_REQUIRE_LAB=1, fail) without."""
    if syn.fastsyn is None:
        reason = "dfagent.wire._fastsyn is not built (no C compiler at install time?)"
        if os.environ.get("DFAGENT_REQUIRE_LAB") == "1":
            pytest.fail(f"{reason} (DFAGENT_REQUIRE_LAB=1: CI must test the C decoder)")
        pytest.skip(reason)
    return syn.fastsyn


def test_extension_is_built_and_current() -> None:
    mod = fastsyn()
    assert Path(mod.__file__).name.startswith("_fastsyn")
    if SOURCE.exists() and Path(mod.__file__).parent == SOURCE.parent:
        # an in-place (editable) build older than its source: the tests would check stale code.
        # Whole seconds: setuptools copies the built file with its mtime truncated to them.
        built, source = Path(mod.__file__).stat().st_mtime, SOURCE.stat().st_mtime
        assert int(built) >= int(source), (
            "_fastsyn.c is newer than the built extension: run `pip install -e .` again"
        )


def test_public_decoders_are_the_c_ones_unless_disabled() -> None:
    mod = fastsyn()
    if os.environ.get("DFAGENT_WIRE_PURE") == "1":
        assert syn.IMPLEMENTATION == "python"
        assert syn.decode_mirror is decode_mirror_py
    else:
        assert syn.IMPLEMENTATION == "c"
        assert syn.decode_mirror is mod.decode_mirror
        assert syn.decode_gre is mod.decode_gre


def outcome(fn: Callable[..., Any], *args: Any) -> Any:
    """Everything observable about one decode: the event and its field types, the very Skip
    singleton, or the error's type, layer, offset, reason, detail and text."""
    try:
        r = fn(*args)
    except DecodeError as e:
        return ("error", type(e), e.layer, e.offset, e.reason, e.detail, str(e))
    if isinstance(r, Skip):
        assert r in (SKIP_NOT_SYN, SKIP_NOT_TCP, SKIP_NOT_IP, SKIP_FRAGMENT)
        return ("skip", id(r), r.reason)
    assert type(r) is SynEvent, type(r)
    return ("syn", tuple(r), tuple(type(x) for x in r), tuple(type(v) for v in r.vlans))


def gre_part(raw: bytes) -> tuple[bytes, bytes] | None:
    """The packet from its GRE header on and the mirror address, as an IPv6 raw socket gives."""
    try:
        parse = parse_ipv4 if raw[0] >> 4 == 4 else parse_ipv6
        proto, off, end, mirror, _dst, _frag = parse(raw, 0, len(raw), "outer")
    except (DecodeError, IndexError):
        return None
    return (raw[off:end], mirror) if proto == 47 else None


@contextmanager
def recording_fallbacks() -> Iterator[list[bytes]]:
    """Reconfigure the extension so that every hand-over to Python is recorded."""
    mod = fastsyn()
    seen: list[bytes] = []

    def fb_mirror(buf: bytes) -> Any:
        seen.append(bytes(buf))
        return decode_mirror_py(buf)

    def fb_gre(buf: bytes, mirror: bytes) -> Any:
        seen.append(bytes(buf))
        return decode_gre_py(buf, mirror)

    args = (SynEvent, syn.ENCAPS, SKIP_NOT_SYN, SKIP_NOT_TCP, SKIP_NOT_IP, SKIP_FRAGMENT)
    mod.configure(*args, fb_mirror, fb_gre)
    try:
        yield seen
    finally:
        mod.configure(*args, decode_mirror_py, decode_gre_py)


@pytest.mark.parametrize("i", range(len(CASES)), ids=[c["name"] for c in CASES])
def test_golden_case_c_equals_python(i: int) -> None:
    mod = fastsyn()
    raw = RAW[i]
    want = outcome(decode_mirror_py, raw)
    assert outcome(mod.decode_mirror, raw) == want
    assert outcome(decode_slow, raw) == want
    for buf in (bytearray(raw), memoryview(raw), memoryview(bytearray(raw))):
        assert outcome(mod.decode_mirror, buf) == want
    g = gre_part(raw)
    if g is not None:
        assert outcome(mod.decode_gre, *g) == outcome(decode_gre_py, *g)


# Golden SYNs and skips the C code leaves to Python on purpose: IPv6 extension headers.
PYTHON_ONLY = {
    "erspan1 inner IPv6 hop-by-hop + routing + dest-opts",
    "erspan1 inner IPv6 first fragment",
    "outer IPv6 with hop-by-hop + dest-opts",
    "inner IPv6 non-first fragment",
}


def test_c_decides_the_usual_shapes_itself() -> None:
    mod = fastsyn()
    mixed, _ = build_corpus(per_shape=3)
    with recording_fallbacks() as seen:
        for raw in RAW + mixed:
            with suppress(DecodeError):
                mod.decode_mirror(raw)
    handed_over = {c["name"] for c, raw in zip(CASES, RAW, strict=True) if raw in seen}
    errors = {c["name"] for c in CASES if "error_layer" in c["expect"]}
    # every packet the reference rejects reaches it (the C code has no error path of its own),
    # and of the others only those with IPv6 extension headers
    assert handed_over == errors | PYTHON_ONLY
    assert not any(raw in seen for raw in mixed)  # the benchmark corpus never leaves C


def test_odd_arguments_behave_as_in_python() -> None:
    mod = fastsyn()
    raw = RAW[0]
    assert mod.decode_mirror(buf=raw) == decode_mirror_py(raw)
    g = gre_part(raw)
    assert g is not None
    assert mod.decode_gre(g[0], mirror=g[1]) == decode_gre_py(*g)
    for fn, args in (
        (mod.decode_mirror, ()),
        (mod.decode_mirror, (raw, raw)),
        (mod.decode_mirror, ("not bytes",)),
        (mod.decode_gre, (raw,)),
    ):
        with pytest.raises(TypeError):
            fn(*args)
    # not a byte buffer: the Python decoder sees it and answers as it always did
    wide = memoryview(bytearray(raw[:40])).cast("H")
    assert outcome(mod.decode_mirror, wide) == outcome(decode_mirror_py, wide)


def test_events_are_ordinary_synevents() -> None:
    mod = fastsyn()
    ev = mod.decode_mirror(RAW[0])
    py = decode_mirror_py(RAW[0])
    assert isinstance(py, SynEvent)
    assert type(ev) is SynEvent and ev == py and hash(ev) == hash(py)
    assert ev._asdict() == py._asdict() and repr(ev) == repr(py)
    assert ev._replace(sport=1).sport == 1 and ev.to_json() == py.to_json()
    assert mod.decode_mirror(RAW[0]).mirror_addr is ev.mirror_addr  # the cached mirror address


def test_no_leaks() -> None:
    mod = fastsyn()
    mixed, _ = build_corpus(per_shape=20)
    pkts = [*mixed, *RAW, memoryview(bytearray(RAW[0]))]
    gres = [g for g in map(gre_part, RAW) if g is not None]

    def round_() -> None:
        for raw in pkts:
            with suppress(DecodeError):
                mod.decode_mirror(raw)
        for g in gres:
            with suppress(DecodeError):
                mod.decode_gre(*g)

    round_()
    tracemalloc.start()
    try:
        round_()
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(20):
            round_()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    # 20 rounds of ~450 packets: a leak of even one small object per packet is > 200 kB
    assert grown < 50_000, grown


def _crafted() -> dict[str, bytes]:
    """Hand-made packets at the edges of the C code's decisions, which random mutation of the
    golden corpus rarely reaches: Ethernet that also looks like IP after 0x88BE, 0x9100 tags,
    ERSPAN III frame types."""
    mirror, collector = pack_addr("5.5.5.5"), pack_addr("9.9.9.9")
    _t, v4 = inner_syn("10.0.0.1", "10.0.0.2", 1000, 80)
    _t, v6 = inner_syn("2001:db8::1", "2001:db8::2", 1000, 80)
    out: dict[str, bytes] = {}

    def add(name: str, gre: bytes, payload: bytes) -> None:
        out[name] = ipv4_packet(mirror, collector, 47, gre + payload)
        out[name + ", outer IPv6"] = ipv6_packet(pack_addr("2001:db8::5"), collector * 4, 47,
                                                 gre + payload)  # fmt: skip

    add(
        "0x9100 + 0x8100 tags",
        gre_header(0x88BE),
        ether_frame(v4, 0x0800, (5, 6), outer_tpid=0x9100),
    )
    add(
        "0x88a8 tag, IPv6",
        gre_header(0x6558, key=3),
        ether_frame(v6, 0x86DD, (7,), outer_tpid=0x88A8),
    )
    add("eight tags", gre_header(0x6558), ether_frame(v4, 0x0800, (1,) * 8))
    add("nine tags", gre_header(0x6558), ether_frame(v4, 0x0800, (1,) * 9))
    add("arp", gre_header(0x6558), ether_frame(bytes(28), 0x0806))
    for first in (0x40, 0x45, 0x60):
        mac = bytes((first, 0x1C, 0x73, 0, 0, 1))
        frame = ether_frame(v4, 0x0800, dst_mac=mac)
        add(f"S bit, Ethernet with MAC {first:02x}..", gre_header(0x88BE, seq=9), frame)
        add(f"no S bit, Ethernet with MAC {first:02x}..", gre_header(0x88BE, key=1), frame)
    for nh in (59, 6, 17, 7):
        # an Ethernet frame whose first 40 bytes are also a plausible IPv6 header (or not: 7)
        plen = len(ether_frame(v4, 0x0800)) - 40
        dst_mac = b"\x60\0\0\0" + plen.to_bytes(2, "big")
        frame = ether_frame(v4, 0x0800, dst_mac=dst_mac, src_mac=bytes((nh, 0, 0, 0, 0, 0)))
        add(f"Ethernet that is also IPv6 with next header {nh}", gre_header(0x88BE), frame)
    for good in (True, False):
        # an Ethernet frame whose first 20 bytes are also an IPv4 header with a good checksum
        buf = bytearray(ether_frame(v4, 0x0800, dst_mac=b"\x45\0\0\x40\0\0"))
        buf[10:12] = b"\0\0"
        buf[10:12] = checksum(bytes(buf[:20])).to_bytes(2, "big")
        buf[11] ^= 0 if good else 1
        add(f"Ethernet that is also IPv4, checksum {good}", gre_header(0x88BE), bytes(buf))
    for ft, o in ((2, None), (2, bytes(8)), (1, None), (0, bytes(8))):
        for inner in (v4, v6):
            e3 = erspan3_header(9, ft=ft, platform=o)
            payload = inner if ft == 2 else ether_frame(inner, 0x0800 if inner is v4 else 0x86DD)
            add(f"erspan3 ft={ft} O={o is not None} v{inner[0] >> 4}", gre_header(0x22EB) + e3,
                payload)  # fmt: skip
    add("raw IPv6 after 0x88BE, S bit", gre_header(0x88BE, seq=1), v6)
    add("erspan2 then IPv6", gre_header(0x88BE, seq=1) + erspan2_header(5), ether_frame(v6, 0x86DD))
    return out


CRAFTED = _crafted()


def test_crafted_cases_reach_their_edges() -> None:
    def reason(name: str) -> str:
        try:
            r = decode_slow(CRAFTED[name])
        except DecodeError as e:
            return e.label
        return r.reason if isinstance(r, Skip) else f"syn {r.encap} {r.vlans}"

    ambiguous = "erspan: ambiguous payload: both Ethernet and IP look valid"
    assert reason("Ethernet that is also IPv4, checksum True") == ambiguous
    assert reason("Ethernet that is also IPv4, checksum False") == "syn erspan1 ()"
    assert reason("Ethernet that is also IPv6 with next header 59") == ambiguous
    assert reason("Ethernet that is also IPv6 with next header 7") == "syn erspan1 ()"
    assert reason("S bit, Ethernet with MAC 45..") == "erspan: wrong type II version"
    assert reason("0x9100 + 0x8100 tags") == "syn erspan1 (5, 6)"
    assert reason("nine tags") == "ether: too many VLAN tags"
    assert reason("arp") == "not-ip"


@pytest.mark.parametrize("name", list(CRAFTED))
def test_crafted_c_equals_python(name: str) -> None:
    mod = fastsyn()
    raw = CRAFTED[name]
    want = outcome(decode_mirror_py, raw)
    assert outcome(mod.decode_mirror, raw) == want
    assert outcome(decode_slow, raw) == want
    g = gre_part(raw)
    assert g is not None
    assert outcome(mod.decode_gre, *g) == outcome(decode_gre_py, *g)
    for cut in range(len(raw)):
        assert outcome(mod.decode_mirror, raw[:cut]) == outcome(decode_mirror_py, raw[:cut])


_BYTE_VALUES = (0x00, 0x01, 0x05, 0x0F, 0x10, 0x12, 0x40, 0x45, 0x46, 0x60, 0x80, 0xFF)


def test_every_single_byte_change_and_every_cut() -> None:
    """Deterministic sweep over the golden SYNs and skips: each of the first 128 bytes set to a
    dozen telling values (versions, header lengths, flags, length fields) or with one bit
    flipped, and the packet cut at every length."""
    mod = fastsyn()
    n = 0
    for case, raw in zip(CASES, RAW, strict=True):
        if "error_layer" in case["expect"]:
            continue
        variants = [raw[:cut] for cut in range(len(raw))]
        for i in range(min(len(raw), 128)):
            for v in (*_BYTE_VALUES, raw[i] ^ 0x01, raw[i] ^ 0x80):
                variants.append(raw[:i] + bytes((v,)) + raw[i + 1 :])
        for b in variants:
            assert outcome(mod.decode_mirror, b) == outcome(decode_mirror_py, b), b.hex()
            n += 1
    assert n > 50_000


# --- fuzzing ----------------------------------------------------------------------------------

FUZZ = settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])


U16_VALUES = (0x0800, 0x86DD, 0x8100, 0x88A8, 0x9100, 0x88BE, 0x22EB, 0x6558, 0x0000, 0xFFFF,
              0x1000, 0x2000, 0x0014, 0x0028)  # fmt: skip


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A golden packet (SYN, skip or error) with a few bytes set, bits flipped, bytes inserted
    or deleted, a header field rewritten, or the tail cut."""
    b = bytearray(draw(st.sampled_from(RAW)))
    for _ in range(draw(st.integers(0, 4))):
        i = draw(st.integers(0, max(len(b) - 1, 0)))
        op = draw(st.sampled_from(("set", "flip", "insert", "delete", "u16", "len")))
        if not b:
            b += draw(st.binary(min_size=1, max_size=8))
        elif op == "set":
            b[i] = draw(st.integers(0, 255))
        elif op == "flip":
            b[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "insert":
            b[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif op == "u16":  # an EtherType, a GRE protocol, a length: values that matter
            v = draw(st.sampled_from(U16_VALUES))
            b[i : i + 2] = v.to_bytes(2, "big")
        elif op == "len":  # the outer IPv4 total length or IPv6 payload length, or anywhere
            j = draw(st.sampled_from((2, 4, i & ~1)))
            b[j : j + 2] = draw(st.integers(0, len(b) + 8)).to_bytes(2, "big")
        elif len(b) > 1:
            del b[i]
    if draw(st.booleans()):
        b = b[: draw(st.integers(0, len(b)))]
    return bytes(b)


@pytest.mark.fuzz
@FUZZ
@given(mutated())
def test_fuzz_mirror_c_equals_python(raw: bytes) -> None:
    mod = fastsyn()
    want = outcome(decode_mirror_py, raw)
    assert outcome(mod.decode_mirror, raw) == want
    assert outcome(decode_slow, raw) == want


@pytest.mark.fuzz
@FUZZ
@given(mutated(), st.sampled_from((b"\x05\x05\x05\x05", b"\x20\x01" + b"\0" * 14)))
def test_fuzz_gre_c_equals_python(raw: bytes, mirror: bytes) -> None:
    mod = fastsyn()
    g = gre_part(raw)
    body = g[0] if g is not None else raw[20:]
    assert outcome(mod.decode_gre, body, mirror) == outcome(decode_gre_py, body, mirror)


@pytest.mark.fuzz
@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=120))
def test_fuzz_random_bytes_c_equals_python(raw: bytes) -> None:
    mod = fastsyn()
    assert outcome(mod.decode_mirror, raw) == outcome(decode_mirror_py, raw)
    assert outcome(mod.decode_gre, raw, b"\1\2\3\4") == outcome(decode_gre_py, raw, b"\1\2\3\4")
