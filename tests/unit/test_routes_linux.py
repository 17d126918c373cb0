"""LinuxRoutes: VIP prefixes cover the routes inside them, notifications are applied as they
arrive, and a VIP no route covers is reported (a fake netlink holding a main table)."""

from __future__ import annotations

import ipaddress

from dfagent.backends.linux.rtnl import RTNH_F_DEAD, Event, Hop, Route
from dfagent.core.marks import RT_PROTO, SLOT_BASE
from dfagent.core.nexthops import NextHop, parse_vip
from dfagent.routes.linux import LinuxRoutes

IDX = {"r1": 1, "r2": 2}
A, B, C = (NextHop(4, "r1", f"10.0.1.{i}") for i in (2, 3, 4))


def route(prefix: str, *hops: NextHop, prio: int = 20, table: int = 254, flags: int = 0,
          proto: int = 186) -> Route:  # fmt: skip
    net = ipaddress.ip_network(prefix)
    hs = tuple(Hop(h.gateway, IDX[h.ifname], flags) for h in hops)
    return Route(net.version, table, net.network_address.packed, net.prefixlen, proto, 1, prio, hs)


class FakeNl:
    def __init__(self, routes: list[Route]) -> None:
        self.table = routes
        self.reads = 0

    def refresh_names(self) -> None:
        pass

    def neighbour_states(self) -> dict[tuple[int, str], int]:
        return {}

    def main_routes(self, family: int) -> list[Route]:
        self.reads += 1
        return [r for r in self.table if r.family == family]

    def ifname(self, index: int) -> str:
        return {i: n for n, i in IDX.items()}[index]

    def ifindex(self, name: str) -> int | None:
        return IDX.get(name)

    def link_up(self, name: str) -> bool:
        return True

    def note_link(self, index: int, name: str, flags: int, deleted: bool) -> None:
        pass


class NoEvents:
    """Stands for the subscribed socket: the tests hand notifications to apply()."""

    overflow = False

    def fileno(self) -> int:
        return -1  # never polled

    def read(self) -> list[Event]:
        return []

    def close(self) -> None:
        pass


def source(routes: list[Route]) -> tuple[LinuxRoutes, FakeNl]:
    nl = FakeNl(routes)
    src = LinuxRoutes(nl)
    src.events = NoEvents()  # watching: no re-read per look
    src._need_full = True
    return src, nl


def test_a_prefix_covers_every_route_inside_it_each_with_its_own_set() -> None:
    src, _ = source([
        route("10.202.0.1/32", A, B),
        route("10.202.0.2/32", B, C),
        route("10.202.7.0/24", A),
        route("10.203.0.1/32", A),  # outside the VIP
        route("10.202.0.3/32", A, flags=RTNH_F_DEAD),  # its only hop is dead
        route("0.0.0.0/0", C),  # around the VIP, but /32s inside it win
    ])  # fmt: skip
    view = src.observe((parse_vip("10.202.0.0/16"),))
    assert {k: set(v) for k, v in view.current.items()} == {
        "10.202.0.1/32": {A, B},
        "10.202.0.2/32": {B, C},
        "10.202.7.0/24": {A},
        "10.202.0.0/16": {C},  # the rest of the block follows the default route
    }
    assert view.unrouted == frozenset()


def test_a_vip_routed_by_a_shorter_route_and_the_default_vip() -> None:
    src, _ = source([route("1.1.1.0/24", A, B), route("0.0.0.0/0", C), route("9.9.9.0/24", A)])
    view = src.observe((parse_vip("1.1.1.1/32"), parse_vip("0.0.0.0/0")))
    # /0 means the default route alone (egress), not every route of the table
    assert {k: set(v) for k, v in view.current.items()} == {
        "1.1.1.1/32": {A, B},
        "0.0.0.0/0": {C},
    }


def test_unrouted_vip_is_reported_until_a_route_appears() -> None:
    src, nl = source([route("10.202.0.1/32", A)])
    vips = (parse_vip("10.202.0.0/16"), parse_vip("10.204.0.0/16"))
    assert src.observe(vips).unrouted == {"10.204.0.0/16"}
    assert src.apply([Event("route", False, route=route("10.204.0.9/32", B))])
    view = src.observe(vips)
    assert view.unrouted == frozenset() and set(view.current["10.204.0.9/32"]) == {B}
    assert nl.reads == 1  # one dump at start, the rest from notifications


def test_notifications_update_sets_and_skip_what_is_not_ours() -> None:
    src, nl = source([route("10.202.0.1/32", A, B)])
    vips = (parse_vip("10.202.0.0/16"),)
    gen = src.observe(vips).generation
    # elsewhere, another table, a dfagent table route we added: nothing changes
    assert not src.apply([Event("route", False, route=route("10.9.0.0/16", A))])
    assert not src.apply([Event("route", False, route=route("10.202.0.1/32", C, table=100))])
    ours = route("10.202.0.1/32", A, table=SLOT_BASE | 1, proto=RT_PROTO)
    assert not src.apply([Event("route", False, route=ours)])
    assert src.observe(vips).generation == gen
    # a replace carries the whole set; IPv6-style removal names one member
    assert src.apply([Event("route", False, route=route("10.202.0.1/32", A, B, C))])
    assert set(src.observe(vips).current["10.202.0.1/32"]) == {A, B, C}
    assert src.apply([Event("route", True, route=route("10.202.0.1/32", B))])
    assert set(src.observe(vips).current["10.202.0.1/32"]) == {A, C}
    # a lower metric wins; its withdrawal brings the other back
    assert src.apply([Event("route", False, route=route("10.202.0.1/32", B, prio=10))])
    assert set(src.observe(vips).current["10.202.0.1/32"]) == {B}
    assert src.apply([Event("route", True, route=route("10.202.0.1/32", B, prio=10))])
    assert set(src.observe(vips).current["10.202.0.1/32"]) == {A, C}
    # someone deletes a route in a dfagent table: the datapath is told to look
    assert src.apply([Event("route", True, route=ours)]) and src.tables_touched
    assert nl.reads == 1


def test_links_nexthop_objects_and_lost_notifications_read_the_table_again() -> None:
    src, nl = source([route("10.202.0.1/32", A)])
    vips = (parse_vip("10.202.0.0/16"),)
    src.observe(vips)
    for ev in (Event("link", False, ifindex=1, ifname="r1"), Event("nexthop", False)):
        assert src.apply([ev])
        src.observe(vips)
    assert src.events is not None
    src.events.overflow = True  # ENOBUFS
    assert src.apply([]) and src.tables_touched
    src.observe(vips)
    assert nl.reads == 4


def test_neighbour_churn_is_no_news_but_a_failed_gateway_is() -> None:
    src, _ = source([route("10.202.0.1/32", A)])
    vips = (parse_vip("10.202.0.0/16"),)
    src.observe(vips)
    reach, stale, failed = 0x02, 0x04, 0x20
    assert src.apply([Event("neigh", False, ifindex=1, address=A.gateway, flags=reach)])
    assert not src.apply([Event("neigh", False, ifindex=1, address=A.gateway, flags=stale)])
    assert not src.apply([Event("neigh", False, ifindex=1, address="10.0.1.99", flags=failed)])
    assert src.apply([Event("neigh", False, ifindex=1, address=A.gateway, flags=failed)])
    assert not src.observe(vips).alive(A)
