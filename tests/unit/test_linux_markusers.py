"""Which mark bits other rules write or compare, and nftables event filtering."""

from __future__ import annotations

import struct

from dfagent.backends.linux.markusers import ALL, conflicts, rule_readers, written_bits
from dfagent.backends.linux.nftevents import touches_us

META = {"meta": {"key": "mark"}}
CT = {"ct": {"key": "mark"}}


def test_written_bits() -> None:
    assert written_bits({"|": [META, 0x4000]}) == 0x4000  # kube-proxy style OR
    assert written_bits({"&": [CT, 0xFFFF00FF]}) == 0x0000FF00  # clears 0xff00
    assert written_bits({"|": [{"&": [META, 0xFFFFC0FF]}, 0x0100]}) == 0x3F00  # mwan3 style
    assert written_bits(0x10) == ALL  # a constant replaces the whole mark
    assert written_bits(CT) == ALL  # a copy of another mark too


def test_conflicts_name_each_overlapping_user() -> None:
    users = [("a", 0x4000), ("b", 0x00010000), ("c", ALL)]
    assert conflicts(users, 0x0FFF0000) == [
        "b: overlaps dfagent's mark bits 0x0fff0000 in 0x00010000",
        "c: overlaps dfagent's mark bits 0x0fff0000 in 0x0fff0000",
    ]
    # `ip rule fwmark 1` compares all 32 bits: dfagent's bits would stop it matching
    assert rule_readers([(4, 100, 0x1, ALL), (4, 200, 0x100, 0xFF00)]) == [
        ("ip -4 rule priority 100 fwmark 0x1/0xffffffff", ALL),
        ("ip -4 rule priority 200 fwmark 0x100/0xff00", 0xFF00),
    ]


def nl_msg(msg_type: int, family: int, attrs: list[tuple[int, bytes]]) -> bytes:
    body = struct.pack("=BBH", family, 0, 0)
    for atype, val in attrs:
        a = struct.pack("=HH", 4 + len(val), atype) + val
        body += a + b"\0" * (-len(a) % 4)
    return struct.pack("=IHHII", 16 + len(body), (10 << 8) | msg_type, 0, 0, 0) + body


def test_touches_us_only_for_deletions_of_our_table() -> None:
    ours = [(1, b"dfagent\0")]
    assert touches_us(nl_msg(2, 1, ours))  # DELTABLE inet dfagent (flush ruleset)
    assert touches_us(nl_msg(8, 1, ours))  # DELRULE
    assert not touches_us(nl_msg(0, 1, ours))  # NEWTABLE
    assert not touches_us(nl_msg(2, 1, [(1, b"filter\0")]))  # someone else's table
    assert not touches_us(nl_msg(2, 2, ours))  # ip dfagent, not inet
    assert touches_us(nl_msg(14, 1, [*ours, (2, b"nh4\0")]))  # an nh4 element deleted
    assert not touches_us(nl_msg(14, 1, [*ours, (2, b"pin4\0")]))  # map mode's own churn
    both = nl_msg(0, 1, ours) + nl_msg(5, 1, ours)  # a batch: NEWTABLE then DELCHAIN
    assert touches_us(both)
