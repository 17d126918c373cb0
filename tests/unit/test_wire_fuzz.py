"""Hypothesis fuzzing of dfagent.wire: any input gives a SynEvent, a Skip or a DecodeError —
nothing else — and the fast path always agrees with the reference path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dfagent.wire import DecodeError, Skip, SynEvent, decode_gre, decode_gre_slow, decode_mirror
from dfagent.wire.syn import decode_slow

pytestmark = pytest.mark.fuzz

CORPUS = Path(__file__).resolve().parents[1] / "data" / "mirror_corpus.jsonl"
SEEDS = [
    bytes.fromhex(json.loads(line)["hex"])
    for line in CORPUS.read_text().splitlines()
    if line.strip() and "syn" in json.loads(line)["expect"]
]
FUZZ = settings(
    max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)  # bounded: the whole file runs in a few seconds


def outcome(fn: Any, *args: Any) -> Any:
    try:
        r = fn(*args)
    except DecodeError as e:
        assert isinstance(e.layer, str) and isinstance(e.offset, int) and e.reason
        str(e)  # formats
        return ("error", e.layer, e.reason)
    if isinstance(r, Skip):
        return ("skip", r.reason)
    assert isinstance(r, SynEvent), type(r)
    r.to_json()  # formats
    return ("syn", tuple(r))


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    b = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 4))):
        i = draw(st.integers(0, len(b) - 1))
        op = draw(st.sampled_from(("set", "flip", "insert", "delete")))
        if op == "set":
            b[i] = draw(st.integers(0, 255))
        elif op == "flip":
            b[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "insert":
            b[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif len(b) > 1:
            del b[i]
    if draw(st.booleans()):
        b = b[: draw(st.integers(0, len(b)))]
    return bytes(b)


@FUZZ
@given(mutated())
def test_mutated_mirrors(raw: bytes) -> None:
    assert outcome(decode_mirror, raw) == outcome(decode_slow, raw)


@FUZZ
@given(st.binary(max_size=200))
def test_random_bytes(raw: bytes) -> None:
    assert outcome(decode_mirror, raw) == outcome(decode_slow, raw)


@FUZZ
@given(mutated(), st.sampled_from((b"\x05\x05\x05\x05", b"\x20\x01" + b"\0" * 14)))
def test_mutated_from_gre(raw: bytes, mirror: bytes) -> None:
    body = raw[20:]  # most seeds have a 20-byte outer IPv4 header
    assert outcome(decode_gre, body, mirror) == outcome(decode_gre_slow, body, mirror)
