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

from dfagent.cli.bench_decode import build_corpus
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
        # an in-place (editable) build older than its source: the tests would check stale code
        assert Path(mod.__file__).stat().st_mtime >= SOURCE.stat().st_mtime, (
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
        op = draw(st.sampled_from(("set", "flip", "insert", "delete", "u16")))
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
