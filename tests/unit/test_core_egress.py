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
        parse_session_map(["x=1", "1=10.0.0.1", "1=%eth1"])


@pytest.mark.parametrize(
    ("item", "why"),
    [
        ("1=foo", "'foo' is not an IP address"),
        ("1=fe80::1", "link-local: add %IFNAME"),
        ("1=%a/b", "not an interface name"),
        ("1=%", "not an interface name"),
        ("1=10.0.0.1%waytoolonginterface", "not an interface name"),
        ("1=224.0.0.1", "cannot be a next hop"),
        ("1=127.0.0.1", "cannot be a next hop"),
        ("4294967296=10.0.0.1", "more than 32 bits"),
    ],
)
def test_session_map_values_are_validated(item: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_session_map([item])


def test_flows_not_for_a_vip_are_dropped_and_counted() -> None:
    from dfagent.core.nexthops import parse_vip

    r = EgressResolver({1: "10.0.1.2"}, vips=(parse_vip("1.1.1.1/32"), parse_vip("2001:db8::/64")))
    items = r.pin_items([Ev(1, None), Ev(1, None, dst="9.9.9.9"), Ev(1, None, dst="2001:db8::5")])
    assert [i[1] for i in items] == ["1.1.1.1", "2001:db8::5"]
    assert r.not_vip == 1


def test_resolve_by_session_then_gre_key() -> None:
    r = EgressResolver({1: "10.0.1.2", 7: "10.0.2.2"})
    items = r.pin_items([Ev(1, None), Ev(None, 7, sport=5), Ev(3, None), Ev(None, None)])
    assert items == [
        ("10.0.0.2", "1.1.1.1", 40000, 80, "10.0.1.2"),
        ("10.0.0.2", "1.1.1.1", 5, 80, "10.0.2.2"),
    ]
    assert r.unknown == 2 and r.by_session == {1: 1, 7: 1}


def test_a_session_naming_a_server_of_both_families_picks_the_flows_family() -> None:
    fams = {1: {4: "10.0.1.2", 6: "fd00:1::2"}}
    r = EgressResolver({1: "10.0.1.2", 2: "10.0.2.2"}, by_family=fams)
    items = r.pin_items([Ev(1, None), Ev(1, None, dst="2001:db8::1"), Ev(2, None, dst="::1")])
    assert [i[4] for i in items] == ["10.0.1.2", "fd00:1::2", "10.0.2.2"]


@pytest.mark.parametrize(
    ("text", "why"),
    [("7", None), (" 7 ", None), ("4294967295", None), ("x", "not a session id"),
     ("²", "not a session id"), ("-1", "not a session id"), ("4294967296", "more than 32 bits")],
)  # fmt: skip
def test_check_session_id(text: str, why: str | None) -> None:
    from dfagent.core.egress import check_session_id

    got = check_session_id(text)
    assert (got is None) if why is None else (got is not None and why in got)


def test_unicode_digits_are_not_a_session() -> None:
    with pytest.raises(ValueError, match="want SESSION=NEXTHOP"):
        parse_session_map(["²=10.0.0.1"])


def test_a_default_next_hop_stands_for_unknown_sessions_in_query_mode() -> None:
    from types import SimpleNamespace

    from dfagent.core.egress import EgressResolver

    ev = SimpleNamespace(session=9, gre_key=None, src="198.51.100.1", dst="192.0.2.10",
                         sport=1, dport=2)  # fmt: skip
    assert EgressResolver({1: "10.0.0.1"}).pin_items([ev]) == []
    q = EgressResolver({1: "10.0.0.1"}, default="")
    assert q.pin_items([ev]) == [("198.51.100.1", "192.0.2.10", 1, 2, "")] and q.unknown == 0


def test_query_answers_a_syn_of_no_known_session_and_is_counted_when_it_cannot() -> None:
    asked: list[tuple[str, str, int, int]] = []

    def query(src: str, dst: str, sport: int, dport: int) -> str | None:
        asked.append((src, dst, sport, dport))
        return None if ":" in dst else "10.2.2.2"

    r = EgressResolver({1: "10.2.1.2"}, query=query)
    assert r.nexthop(Ev(1, None)) == "10.2.1.2" and asked == []  # observed first
    assert r.nexthop(Ev(None, None, sport=41000)) == "10.2.2.2"
    assert asked == [("10.0.0.2", "1.1.1.1", 41000, 80)]
    assert r.nexthop(Ev(7, None, src="fd00:1::10", dst="2001:db8::1")) is None
    assert r.unknown == 1  # the IPv6 SYN: counted as a SYN of no known session


def test_kernel_egress_asks_for_ipv4_flows_only() -> None:
    from dfagent.backends.linux.egress import KernelEgress

    calls: list[tuple[object, ...]] = []

    def route_get(*args: object) -> tuple[int, str | None] | None:
        calls.append(args)
        if len(args) == 1:  # where the client is: eth1
            return (2, None)
        return (4, "10.2.2.2") if args[4] != 9 else None

    k = KernelEgress(route_get)
    assert k.nexthop("10.1.0.10", "1.1.1.1", 40000, 80) == "10.2.2.2"
    assert k.nexthop("10.1.0.10", "1.1.1.1", 9, 80) is None and k.no_answer == 1
    assert calls == [("10.1.0.10",), ("1.1.1.1", "10.1.0.10", 2, 6, 40000, 80),
                     ("1.1.1.1", "10.1.0.10", 2, 6, 9, 80)]  # fmt: skip
    assert k.nexthop("fd00:1::10", "2001:db8::1", 40000, 80) is None and k.declined_v6 == 1
    assert len(calls) == 3  # an IPv6 flow is not asked: the answer would be wrong
