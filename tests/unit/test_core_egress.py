from __future__ import annotations

from typing import NamedTuple

import pytest

from dfagent.core.egress import EgressResolver, parse_session_map


class Ev(NamedTuple):
    session: int | None
    gre_key: int | None
    src: str = "10.0.0.2"
    dst: str = "1.1.1.1"
    sport: int = 40000
    dport: int = 80


def test_parse_session_map() -> None:
    assert parse_session_map(["1=10.0.1.2", " 2 = fe80::1%swp2"]) == {
        1: "10.0.1.2",
        2: "fe80::1%swp2",
    }
    with pytest.raises(ValueError, match="want SESSION=NEXTHOP.*given twice"):
        parse_session_map(["x=1", "1=a", "1=b"])


def test_resolve_by_session_then_gre_key() -> None:
    r = EgressResolver({1: "10.0.1.2", 7: "10.0.2.2"})
    items = r.pin_items([Ev(1, None), Ev(None, 7, sport=5), Ev(3, None), Ev(None, None)])
    assert items == [
        ("10.0.0.2", "1.1.1.1", 40000, 80, "10.0.1.2"),
        ("10.0.0.2", "1.1.1.1", 5, 80, "10.0.2.2"),
    ]
    assert r.unknown == 2 and r.by_session == {1: 1, 7: 1}
