"""Pins without DirectFlow on the eAPI test switch: ACLs, PBR and traffic-policy config over
pyeapi, printed back in `show running-config`, typos refused."""

from __future__ import annotations

import pytest
from pyeapi.eapilib import CommandError

from dfagent.lab.eapi import EapiSwitch
from tests.eos.test_eapi_switch import node

PBR_PIN = [
    "ip access-list DFA-p1",
    "10 permit tcp host 198.51.100.7 eq 40000 host 192.0.2.10 eq 80",
    "exit",
    "class-map type pbr match-any DFA-p1",
    "match ip access-group DFA-p1",
    "exit",
    "policy-map type pbr DFAGENT-PINS",
    "class DFA-p1",
    "set nexthop 10.0.1.2",
    "exit",
    "exit",
]

TP_PIN = [
    "traffic-policies",
    "traffic-policy DFAGENT-PINS",
    "match DFA-t1 ipv4",
    "source prefix 198.51.100.7/32",
    "destination prefix 192.0.2.10/32",
    "protocol tcp source port 40000 destination port 80",
    "actions",
    "redirect next-hop 10.0.1.2",
    "exit",
    "exit",
    "match DFA-t2 ipv6",
    "source prefix 2001:db8::7/128",
    "destination prefix 2001:db8::a/128",
    "protocol tcp source port 1 destination port 443",
    "actions",
    "redirect next-hop 2001:db8::ff",
]


def running(sw: EapiSwitch) -> str:
    return str(node(sw).enable("show running-config")[0]["result"]["output"])


def test_pbr_pin_round_trip(eapi_switch: EapiSwitch) -> None:
    n = node(eapi_switch)
    setup = [
        "policy-map type pbr DFAGENT-PINS",
        "exit",
        "interface Et1",
        "service-policy type pbr input DFAGENT-PINS",
    ]
    assert n.config(setup + PBR_PIN) == [{}] * (len(setup) + len(PBR_PIN))
    text = running(eapi_switch)
    assert "interface Ethernet1\n   service-policy type pbr input DFAGENT-PINS\n!" in text
    assert (
        "ip access-list DFA-p1\n"
        "   10 permit tcp host 198.51.100.7 eq 40000 host 192.0.2.10 eq 80\n!" in text
    )
    assert "class-map type pbr match-any DFA-p1\n   10 match ip access-group DFA-p1\n!" in text
    assert (
        "policy-map type pbr DFAGENT-PINS\n   10 class DFA-p1\n      set nexthop 10.0.1.2\n!"
        in text
    )
    # Unpin: the class, its class-map and ACL go; the policy stays applied.
    n.config(["policy-map type pbr DFAGENT-PINS", "no class DFA-p1", "exit",
              "no class-map type pbr match-any DFA-p1", "no ip access-list DFA-p1"])  # fmt: skip
    text = running(eapi_switch)
    assert "DFA-p1" not in text
    assert "policy-map type pbr DFAGENT-PINS\n!" in text


def test_pbr_ipv6_and_acl_sequence_numbers(eapi_switch: EapiSwitch) -> None:
    node(eapi_switch).config(
        [
            "ipv6 access-list DFA-6",
            "permit tcp host 2001:db8::7 eq 1 host 2001:db8::a eq 443",
            "permit tcp any any syn",
            "25 deny ipv6 2001:db8::/32 any",
            "no 20",
            "class-map type pbr match-any DFA-6",
            "match ipv6 access-group DFA-6",
            "policy-map type pbr P",
            "class DFA-6",
            "set nexthop 2001:db8::ff",
        ]
    )
    text = running(eapi_switch)
    assert (
        "ipv6 access-list DFA-6\n   10 permit tcp host 2001:db8::7 eq 1 host 2001:db8::a eq 443\n"
        "   25 deny ipv6 2001:db8::/32 any\n!"
    ) in text
    assert "   10 class DFA-6\n      set nexthop 2001:db8::ff\n" in text


def test_traffic_policy_pin_round_trip(eapi_switch: EapiSwitch) -> None:
    n = node(eapi_switch)
    n.config(TP_PIN + ["interface Ethernet3", "traffic-policy input DFAGENT-PINS"])
    text = running(eapi_switch)
    assert (
        "traffic-policies\n   traffic-policy DFAGENT-PINS\n      match DFA-t1 ipv4\n"
        "         source prefix 198.51.100.7/32\n         destination prefix 192.0.2.10/32\n"
        "         protocol tcp source port 40000 destination port 80\n         !\n"
        "         actions\n            redirect next-hop 10.0.1.2\n      !\n"
        "      match DFA-t2 ipv6\n"
    ) in text
    assert (
        "      match ipv4-all-default ipv4\n      !\n      match ipv6-all-default ipv6\n!" in text
    )
    assert "interface Ethernet3\n   traffic-policy input DFAGENT-PINS\n!" in text
    n.config(["traffic-policies", "traffic-policy DFAGENT-PINS", "no match DFA-t1 ipv4"])
    text = running(eapi_switch)
    assert "DFA-t1" not in text and "match DFA-t2 ipv6" in text


@pytest.mark.parametrize(
    "cmds",
    [
        ["ip access-list A", "10 permit tcp host 198.51.100.7 eq 70000 any"],
        ["ip access-list A", "10 permit tcp host 2001:db8::1 any"],  # v6 host in an ip ACL
        ["ip access-list A", "10 allow tcp any any"],
        ["ip access-list A", "10 permit tcp 10.0.0.1 any"],  # an address needs host or /len
        ["ip access-list A", "10 permit udp any any syn"],  # tcp flags on udp
        ["ip access-list A", "10 permit tcp any any", "10 permit udp any any"],  # seq taken
        ["ip access-list A.B"],
        ["class-map type pbr match-all C"],
        ["class-map type pbr match-any C", "match ip access-list A"],
        ["policy-map type pbr P", "class C", "set next-hop 10.0.0.1"],
        ["policy-map type pbr P", "class C", "set nexthop 10.0.0"],
        ["policy-map type qos P"],
        ["interface Ethernet1", "service-policy type pbr output P"],
        ["interface Gi0/1"],
        ["traffic-policies", "traffic-policy T", "match M"],
        ["traffic-policies", "traffic-policy T", "match M ipv4", "source prefix 2001:db8::/32"],
        ["traffic-policies", "traffic-policy T", "match M ipv4", "source prefix 10.0.0.1/24"],
        ["traffic-policies", "traffic-policy T", "match M ipv4", "protocol tcp src port 1"],
        [
            "traffic-policies",
            "traffic-policy T",
            "match M ipv4",
            "actions",
            "redirect nexthop 10.0.0.1",
        ],
        [
            "traffic-policies",
            "traffic-policy T",
            "match M ipv4",
            "actions",
            "redirect next-hop 2001:db8::1",
        ],
        ["traffic-policies", "traffic-policy T", "match ipv4-all-default ipv4"],
        ["traffic-policies", "traffic-policy T", "match M ipv4", "exit", "match M ipv6"],
    ],
)
def test_policy_typos_are_refused(eapi_switch: EapiSwitch, cmds: list[str]) -> None:
    with pytest.raises(CommandError) as err:
        node(eapi_switch).config(cmds)
    assert err.value.error_code == 1002
    # The last command is the typo; everything before it was accepted.
    assert f"of {len(cmds) + 2} '{cmds[-1]}' failed" in err.value.error_text
