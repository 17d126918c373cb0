"""Egress by query against the test switch: the member the switch's hash picks (`show
load-balance destination` → outputIntf → the VIP route's via), batched in two requests,
cached until the next reconcile; an ambiguous answer is reported, not guessed."""

from __future__ import annotations

import pytest

from dfagent.backends.eos.names import flow_name
from dfagent.config import ConfigError
from dfagent.lab.eapi import EapiSwitch
from tests.eos.helpers import VIP, VIP6, backend, config, flow, flow_entry

MEMBERS = {"Ethernet1": "10.2.1.2", "Ethernet2": "10.2.2.2"}


def _routes(sw: EapiSwitch) -> None:
    st = sw.state.static
    st.add_route(f"{VIP}/32", [(a, i) for i, a in MEMBERS.items()], "eBGP")
    st.add_route("198.51.0.0/16", [("10.9.0.1", "Ethernet9")])
    # two members behind one interface: the switch's answer cannot say which
    st.add_route(f"{VIP6}/128", [("2001:db8:2::2", "Ethernet3"), ("2001:db8:3::2", "Ethernet3")])
    st.add_route("2001:db8:1::/48", [("2001:db8:9::1", "Ethernet9")])


def _asked(sw: EapiSwitch, i: int) -> str:
    b = backend(sw, prefix="probe")
    f = flow(i)
    (res,) = b.session.run([
        f"show load-balance destination ip ingress-interface Ethernet9 src-ipv4-address {f.src} "
        f"dst-ipv4-address {f.dst} ip-protocol 6 src-l4-port {f.sport} dst-l4-port {f.dport}"
    ])  # fmt: skip
    return MEMBERS[res["outputIntf"]]


def test_pins_follow_the_members_the_switch_picks(eapi_switch: EapiSwitch) -> None:
    sw = eapi_switch
    _routes(sw)
    b = backend(sw, egress="query")
    assert b.egress is not None
    b.start()
    before = len(sw.requests)
    b.pin([(f.src, f.dst, f.sport, f.dport, "") for f in (flow(i) for i in range(40))])
    # routes (one request), load-balance (one request), the pins (one request)
    assert len(sw.requests) - before == 3
    got = {i: str(flow_entry(sw, flow_name("dfa_s1", flow(i))).config.nexthop)
           for i in range(40)}  # fmt: skip
    assert got == {i: _asked(sw, i) for i in range(40)}
    assert set(got.values()) == set(MEMBERS.values())  # both members used
    assert b.egress.stats.answered == 40 and b.egress.stats.requests == 2
    before = len(sw.requests)
    b.pin([(f.src, f.dst, f.sport, f.dport, "") for f in (flow(i) for i in range(40, 50))])
    assert len(sw.requests) - before == 2  # routes cached: load-balance + pins


def test_an_ambiguous_answer_is_reported_not_guessed(eapi_switch: EapiSwitch) -> None:
    sw = eapi_switch
    _routes(sw)
    b = backend(sw, egress="query")
    b.start()
    f6 = flow(1, VIP6)
    b.pin([(f6.src, f6.dst, f6.sport, f6.dport, "")])
    assert b.egress is not None and b.egress.stats.ambiguous == 1
    assert sw.state.flows.used() == 0 and b.stats.unknown_nexthop == 1
    f = flow(2, "192.0.2.99")  # not a VIP: never asked
    b.pin([(f.src, f.dst, f.sport, f.dport, "")])
    assert b.egress.stats.queried == 1


def test_query_must_be_what_the_profile_supports(eapi_switch: EapiSwitch) -> None:
    with pytest.raises(ConfigError) as exc:
        config(eapi_switch, profile="arista-ceos-lab", egress="query")
    assert exc.value.errors == ["backend.eos.egress: arista-ceos-lab supports observed, not query"]
    assert backend(eapi_switch).egress is None  # 7050X: observed first
