"""Drain config, routing answers and the running config on the eAPI test switch."""

from __future__ import annotations

from ipaddress import ip_address, ip_network
from typing import Any

import pytest
from pyeapi.eapilib import CommandError

from dfagent.lab.eapi import EapiSwitch, FiveTuple
from dfagent.lab.eapi.runconfig import section
from tests.eos.test_eapi_switch import node

VIP = "192.0.2.10"
SERVERS = {
    "s1": ("10.0.1.2", "Ethernet1"),
    "s2": ("10.0.2.2", "Ethernet2"),
    "s3": ("10.0.3.2", "Ethernet3"),
}

DRAIN_S1 = [
    "ip prefix-list PL-DFAGENT-S1 seq 10 permit 10.0.1.2/32",
    "route-map RM-DFAGENT-IN permit 10",
    "match ip next-hop prefix-list PL-DFAGENT-S1",
    "set local-preference 1",
    "route-map RM-DFAGENT-IN permit 20",
    "router bgp 65000",
    "neighbor SERVERS route-map RM-DFAGENT-IN in",
]


def anycast(sw: EapiSwitch) -> None:
    """Three servers announce the VIP over a peer group, as in labs/resilient-ecmp."""
    sw.state.config.hostname = "lb"
    for nh, intf in SERVERS.values():
        sw.state.static.add_bgp_path(f"{VIP}/32", nh, intf, peer_group="SERVERS", as_path="65100")
    node(sw).config(["router bgp 65000", "neighbor SERVERS peer group", "maximum-paths 4 ecmp 4"])


def bgp_paths(sw: EapiSwitch) -> dict[str, dict[str, Any]]:
    out = node(sw).enable(f"show ip bgp {VIP}")[0]["result"]
    entry = out["vrfs"]["default"]["bgpRouteEntries"][f"{VIP}/32"]
    return {p["nextHop"]: p for p in entry["bgpRoutePaths"]}


def route_vias(sw: EapiSwitch) -> list[tuple[str, str]]:
    out = node(sw).enable(f"show ip route {VIP}")[0]["result"]
    vias = out["vrfs"]["default"]["routes"][f"{VIP}/32"]["vias"]
    return [(v["nexthopAddr"], v["interface"]) for v in vias]


def test_drain_and_undrain_change_bgp_and_route(eapi_switch: EapiSwitch) -> None:
    anycast(eapi_switch)
    paths = bgp_paths(eapi_switch)
    assert all(p["routeType"]["ecmp"] and p["localPreference"] == 100 for p in paths.values())
    assert len(route_vias(eapi_switch)) == 3

    assert node(eapi_switch).config(DRAIN_S1) == [{}] * len(DRAIN_S1)
    paths = bgp_paths(eapi_switch)
    s1 = paths["10.0.1.2"]
    assert s1["localPreference"] == 1
    assert (
        s1["routeType"]["valid"] and not s1["routeType"]["ecmp"] and not s1["routeType"]["active"]
    )
    assert all(paths[nh]["routeType"]["ecmp"] for nh in ("10.0.2.2", "10.0.3.2"))
    assert route_vias(eapi_switch) == [("10.0.2.2", "Ethernet2"), ("10.0.3.2", "Ethernet3")]

    # The running config holds the drain exactly as EOS prints it.
    text = node(eapi_switch).enable("show running-config")[0]["result"]["output"]
    for line in [
        "ip prefix-list PL-DFAGENT-S1 seq 10 permit 10.0.1.2/32",
        "route-map RM-DFAGENT-IN permit 10\n   match ip next-hop prefix-list PL-DFAGENT-S1\n"
        "   set local-preference 1\n!\nroute-map RM-DFAGENT-IN permit 20\n!",
        "router bgp 65000\n   maximum-paths 4 ecmp 4\n   neighbor SERVERS peer group\n"
        "   neighbor SERVERS route-map RM-DFAGENT-IN in\n",
    ]:
        assert line in text
    piped = node(eapi_switch).run_commands(
        ["show running-config | section PL-DFAGENT|RM-DFAGENT"], encoding="text"
    )[0]["output"]
    assert piped == (
        "ip prefix-list PL-DFAGENT-S1 seq 10 permit 10.0.1.2/32\n!\n"
        "route-map RM-DFAGENT-IN permit 10\n   match ip next-hop prefix-list PL-DFAGENT-S1\n"
        "   set local-preference 1\n!\nroute-map RM-DFAGENT-IN permit 20\n!\n"
        "router bgp 65000\n   neighbor SERVERS route-map RM-DFAGENT-IN in\n"
    )

    undrain = [
        "router bgp 65000",
        "no neighbor SERVERS route-map RM-DFAGENT-IN in",
        "no route-map RM-DFAGENT-IN",
        "no ip prefix-list PL-DFAGENT-S1",
    ]
    node(eapi_switch).config(undrain)
    assert all(p["routeType"]["ecmp"] for p in bgp_paths(eapi_switch).values())
    text = node(eapi_switch).enable("show running-config")[0]["result"]["output"]
    assert "DFAGENT" not in text


def test_route_map_without_permit_all_denies_the_rest(eapi_switch: EapiSwitch) -> None:
    anycast(eapi_switch)
    node(eapi_switch).config([c for c in DRAIN_S1 if c != "route-map RM-DFAGENT-IN permit 20"])
    paths = bgp_paths(eapi_switch)
    # Only s1 passes the policy (local-pref 1); s2/s3 fall off the route-map's end.
    assert paths["10.0.1.2"]["routeType"]["active"]
    assert not paths["10.0.2.2"]["routeType"]["valid"]
    assert route_vias(eapi_switch) == [("10.0.1.2", "Ethernet1")]


def test_show_ip_bgp_text(eapi_switch: EapiSwitch) -> None:
    anycast(eapi_switch)
    node(eapi_switch).config(DRAIN_S1)
    text = node(eapi_switch).run_commands([f"show ip bgp {VIP}"], encoding="text")[0]["output"]
    assert "BGP routing table entry for 192.0.2.10/32" in text
    assert "10.0.1.2 from 10.0.1.2" in text and "localpref 1," in text


def test_load_balance_destination(eapi_switch: EapiSwitch) -> None:
    anycast(eapi_switch)
    n = node(eapi_switch)
    seen = set()
    for sport in range(40000, 40040):
        cmd = (
            f"show load-balance destination ip ingress-interface Et47 src-ipv4-address "
            f"198.51.100.7 dst-ipv4-address {VIP} ip-protocol 6 src-l4-port {sport} dst-l4-port 80"
        )
        out = n.enable(cmd)[0]["result"]["outputIntf"]
        assert out in {"Ethernet1", "Ethernet2", "Ethernet3"}
        again = n.enable(cmd)[0]["result"]["outputIntf"]
        assert again == out  # a hash: the same flow, the same member
        seen.add(out)
    assert len(seen) == 3  # 40 flows over 3 members use them all
    # Drained: new flows only hash over the remaining members.
    n.config(DRAIN_S1)
    for sport in range(40000, 40040):
        cmd = (
            f"show load-balance destination ip ingress-interface Ethernet47 src-ipv4-address "
            f"198.51.100.7 dst-ipv4-address {VIP} ip-protocol 6 src-l4-port {sport} dst-l4-port 80"
        )
        assert n.enable(cmd)[0]["result"]["outputIntf"] in {"Ethernet2", "Ethernet3"}
    # Overrides and text, and no route at all.
    flow = FiveTuple("Ethernet47", ip_address("198.51.100.7"), ip_address(VIP), 6, 1, 80)
    eapi_switch.state.static.egress_overrides[flow] = "Ethernet9"
    cmd = (
        f"show load-balance destination ip ingress-interface Et47 src-ipv4-address 198.51.100.7 "
        f"dst-ipv4-address {VIP} ip-protocol 6 src-l4-port 1 dst-l4-port 80"
    )
    assert n.run_commands([cmd], encoding="text")[0]["output"] == "Output Interface: Ethernet9\n"
    cmd = cmd.replace(VIP, "203.0.113.1")
    assert n.enable(cmd)[0]["result"]["outputIntf"] == ""


@pytest.mark.parametrize(
    "cmd",
    [
        "show load-balance destination ip ingress-interface Et47 src-ipv4-address 1.1.1.1",
        "show load-balance destination ip ingress-interface Et47 src-ipv6-address 1.1.1.1 "
        "dst-ipv4-address 2.2.2.2 ip-protocol 6",
        "show load-balance destination ip ingress-interface 47 src-ipv4-address 1.1.1.1 "
        "dst-ipv4-address 2.2.2.2 ip-protocol 6",
        "show load-balance destination ip ingress-interface Et47 src-ipv4-address 1.1.1.1 "
        "dst-ipv4-address 2.2.2.2 ip-protocol 6 dst-port 80",
        "show ip route 300.1.1.1",
        "show ip bgp 2001:db8::1",
        "show ip routes",
        "show directflow flow",
    ],
)
def test_show_typos(eapi_switch: EapiSwitch, cmd: str) -> None:
    with pytest.raises(CommandError) as err:
        node(eapi_switch).run_commands([cmd])
    assert err.value.error_code == 1002


def test_static_routes_and_longest_match(eapi_switch: EapiSwitch) -> None:
    s = eapi_switch.state.static
    s.add_route("0.0.0.0/0", [("10.9.9.1", "Ethernet48")])
    s.add_route("198.51.100.0/24", [("10.0.7.1", "Ethernet7"), ("10.0.8.1", "Ethernet8")])
    out = node(eapi_switch).enable("show ip route 198.51.100.7")[0]["result"]
    routes = out["vrfs"]["default"]["routes"]
    assert list(routes) == ["198.51.100.0/24"]
    assert routes["198.51.100.0/24"]["routeType"] == "static"
    assert len(routes["198.51.100.0/24"]["vias"]) == 2
    everything = node(eapi_switch).enable("show ip route")[0]["result"]
    assert sorted(everything["vrfs"]["default"]["routes"]) == ["0.0.0.0/0", "198.51.100.0/24"]
    assert (
        node(eapi_switch).enable("show ipv6 route")[0]["result"]["vrfs"]["default"]["routes"] == {}
    )


@pytest.mark.parametrize(
    "cmds",
    [
        ["ip prefix-list PL seq 10 permit 10.0.1.2"],  # needs /len
        ["ip prefix-list PL seq 10 permit 10.0.1.2/24"],  # host bits set
        ["ip prefix-list PL seq 10 allow 10.0.1.0/24"],
        ["ip prefix-list PL seq 10 permit 10.0.1.0/24 ge 8"],  # ge below the length
        ["route-map RM permit 10", "set local-pref 1"],
        ["route-map RM permit 10", "set local-preference -1"],
        ["route-map RM permit 10", "match ip next-hop PL"],
        ["route-map RM accept 10"],
        ["router bgp 65000", "neighbor SERVERS route-map RM inbound"],
        ["router bgp 65000", "neighbor SERVERS route-map RM"],
        ["router bgp 65000", "neighbor 10.0.0.1 peer group NOPE"],
        ["router bgp 65000", "exit", "router bgp 65001"],
        ["router bgp 0"],
        ["router ospf 1"],
    ],
)
def test_drain_config_typos_are_refused(eapi_switch: EapiSwitch, cmds: list[str]) -> None:
    with pytest.raises(CommandError) as err:
        node(eapi_switch).config(cmds)
    assert err.value.error_code == 1002
    # The last command is the typo; everything before it was accepted.
    assert f"of {len(cmds) + 2} '{cmds[-1]}' failed" in err.value.error_text


def test_prefix_list_mode_and_auto_sequence(eapi_switch: EapiSwitch) -> None:
    node(eapi_switch).config(
        [
            "ip prefix-list PL-A permit 10.0.1.2/32",
            "ip prefix-list PL-A permit 10.0.2.0/24 le 32",
            "ip prefix-list PL-B",
            "seq 5 deny 10.0.3.0/24 ge 25",
            "permit 0.0.0.0/0 le 32",
        ]
    )
    text = node(eapi_switch).enable("show running-config")[0]["result"]["output"]
    assert (
        "ip prefix-list PL-A seq 10 permit 10.0.1.2/32\n"
        "ip prefix-list PL-A seq 20 permit 10.0.2.0/24 le 32\n" in text
    )
    assert (
        "ip prefix-list PL-B seq 5 deny 10.0.3.0/24 ge 25\n"
        "ip prefix-list PL-B seq 10 permit 0.0.0.0/0 le 32\n" in text
    )
    cfg = eapi_switch.state.config

    assert cfg.prefix_list_permits("PL-A", ip_network("10.0.2.9/32"))
    assert not cfg.prefix_list_permits("PL-A", ip_network("10.0.1.3/32"))
    assert not cfg.prefix_list_permits("PL-B", ip_network("10.0.3.128/25"))
    assert cfg.prefix_list_permits("PL-B", ip_network("10.0.3.0/24"))


def test_section_filter_keeps_parents_and_children() -> None:
    text = (
        "hostname lb\n!\nrouter bgp 65000\n   router-id 1.1.1.1\n   neighbor X route-map RM in\n"
        "!\ndirectflow\n   no shutdown\n   flow A\n      match ethertype ip\n   flow B\n"
        "      priority 3\n!\nend\n"
    )
    assert section(text, "priority") == "directflow\n   flow B\n      priority 3\n"
    assert section(text, "flow A") == "directflow\n   flow A\n      match ethertype ip\n"
    assert section(text, "route-map|hostname") == (
        "hostname lb\n!\nrouter bgp 65000\n   neighbor X route-map RM in\n"
    )
    assert section(text, "nothing-like-this") == ""


def test_deny_entry_rejects_matching_paths(eapi_switch: EapiSwitch) -> None:
    anycast(eapi_switch)
    node(eapi_switch).config(
        [
            "ip prefix-list PL-S2 seq 10 permit 10.0.2.2/32",
            "route-map RM-IN deny 10",
            "match ip next-hop prefix-list PL-S2",
            "route-map RM-IN permit 20",
            "router bgp 65000",
            "neighbor SERVERS route-map RM-IN in",
        ]
    )
    paths = bgp_paths(eapi_switch)
    assert not paths["10.0.2.2"]["routeType"]["valid"]
    assert route_vias(eapi_switch) == [("10.0.1.2", "Ethernet1"), ("10.0.3.2", "Ethernet3")]
    text = node(eapi_switch).enable("show running-config")[0]["result"]["output"]
    assert "route-map RM-IN deny 10\n   match ip next-hop prefix-list PL-S2\n!" in text


def test_ipv6_drain_with_ipv6_prefix_lists(eapi_switch: EapiSwitch) -> None:
    """The backend's v4 + v6 drain: `ipv6 prefix-list` and `match ipv6 next-hop` entries."""
    vip6 = "2001:db8::10/128"
    s = eapi_switch.state.static
    anycast(eapi_switch)
    s.add_bgp_path(vip6, "2001:db8:1::2", "Ethernet1", peer_group="SERVERS")
    s.add_bgp_path(vip6, "2001:db8:2::2", "Ethernet2", peer_group="SERVERS")
    node(eapi_switch).config(
        [
            "ip prefix-list DRAIN4 seq 10 permit 10.0.1.2/32",
            "ipv6 prefix-list DRAIN6 seq 10 permit 2001:db8:1::2/128",
            "route-map DFAGENT-DRAIN permit 10",
            "match ip next-hop prefix-list DRAIN4",
            "set local-preference 1",
            "route-map DFAGENT-DRAIN permit 11",
            "match ipv6 next-hop prefix-list DRAIN6",
            "set local-preference 1",
            "route-map DFAGENT-DRAIN permit 20",
            "router bgp 65000",
            "neighbor SERVERS route-map DFAGENT-DRAIN in",
        ]
    )
    out = node(eapi_switch).enable("show ipv6 bgp 2001:db8::10")[0]["result"]
    paths = out["vrfs"]["default"]["bgpRouteEntries"][vip6]["bgpRoutePaths"]
    prefs = {p["nextHop"]: (p["localPreference"], p["routeType"]["active"]) for p in paths}
    assert prefs == {"2001:db8:1::2": (1, False), "2001:db8:2::2": (100, True)}
    assert bgp_paths(eapi_switch)["10.0.1.2"]["localPreference"] == 1  # v4 drained too
    assert bgp_paths(eapi_switch)["10.0.2.2"]["localPreference"] == 100
    text = node(eapi_switch).enable("show running-config")[0]["result"]["output"]
    assert "ipv6 prefix-list DRAIN6\n   seq 10 permit 2001:db8:1::2/128\n!" in text
    assert "route-map DFAGENT-DRAIN permit 11\n   match ipv6 next-hop prefix-list DRAIN6\n" in text
    # The backend's undrain of the v6 member, then typos in v6 lists.
    node(eapi_switch).config(
        ["no ipv6 prefix-list DRAIN6 seq 10", "no route-map DFAGENT-DRAIN permit 11"]
    )
    text = node(eapi_switch).enable("show running-config")[0]["result"]["output"]
    assert "2001:db8:1::2/128" not in text and "permit 11" not in text
    for bad in (
        "ipv6 prefix-list D6 seq 10 permit 10.0.0.0/8",
        "ipv6 prefix-list D6 seq 10 permit 2001:db8::/32 le 129",
    ):
        with pytest.raises(CommandError):
            node(eapi_switch).config([bad])


@pytest.mark.parametrize(
    "cmd",
    [
        "show running-config section [",
        "show running-config | section (",
        "show running-config | include",
        "show running-config | count x",
        "show hostname | include [",
    ],
)
def test_bad_filters_are_invalid_input(eapi_switch: EapiSwitch, cmd: str) -> None:
    with pytest.raises(CommandError) as err:
        node(eapi_switch).run_commands([cmd], encoding="text")
    assert err.value.error_code == 1002


def test_filters_on_text_shows(eapi_switch: EapiSwitch) -> None:
    out = node(eapi_switch).run_commands(
        ["show running-config section hostname", "show version | include Arista"], encoding="text"
    )
    assert out[0]["output"] == "hostname dfagent-sw1\n"
    assert out[1]["output"] == "Arista DCS-7050SX-64\n"
    with pytest.raises(CommandError) as err:  # a pipe in json: no JSON model to filter
        node(eapi_switch).run_commands(["show version | include Arista"])
    assert err.value.error_code == 1003
