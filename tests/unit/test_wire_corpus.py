"""Walk the golden corpus (tests/data/mirror_corpus.jsonl, made by make_mirror_corpus.py with
scapy as the oracle): every case must decode to exactly what the corpus says, on both the
fast path (decode_mirror) and the reference path (decode_slow), and, for outer-IPv4/IPv6
packets, through decode_gre with the mirror address given separately."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dfagent.wire import DecodeError, Skip, SynEvent, decode_gre, decode_mirror, decode_slow
from dfagent.wire.ip import parse_ipv4, parse_ipv6

CORPUS = Path(__file__).resolve().parents[1] / "data" / "mirror_corpus.jsonl"
CASES = [json.loads(line) for line in CORPUS.read_text().splitlines() if line.strip()]


def outcome(fn: Any, *args: Any) -> dict[str, Any]:
    try:
        r = fn(*args)
    except DecodeError as e:
        return {"error_layer": e.layer}
    if isinstance(r, Skip):
        return {"skipped": r.reason}
    assert isinstance(r, SynEvent)
    return {"syn": r.to_json()}


def test_corpus_is_big_enough() -> None:
    encaps = {c["expect"]["syn"]["encap"] for c in CASES if "syn" in c["expect"]}
    assert encaps == {"erspan1", "erspan2", "erspan3", "teb", "ip"}
    assert sum("error_layer" in c["expect"] for c in CASES) > 100
    assert {c["expect"].get("skipped") for c in CASES} >= {"not-syn", "not-tcp", "not-ip",
                                                            "fragment"}  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_corpus_case(case: dict[str, Any]) -> None:
    raw = bytes.fromhex(case["hex"])
    want = case["expect"]
    assert outcome(decode_mirror, raw) == want
    assert outcome(decode_slow, raw) == want
    # the same packet as an IPv6 raw socket would deliver it: from GRE on, mirror given apart
    if "syn" in want or "skipped" in want and want["skipped"] != "fragment":
        parse = parse_ipv4 if raw[0] >> 4 == 4 else parse_ipv6
        _proto, off, end, mirror, _dst, _frag = parse(raw, 0, len(raw), "outer")
        got = outcome(decode_gre, raw[off:end], mirror)
        assert got == want
    # the same bytes in a mutable buffer (the receiver may hand over a bytearray/memoryview)
    assert outcome(decode_mirror, memoryview(bytearray(raw))) == want
