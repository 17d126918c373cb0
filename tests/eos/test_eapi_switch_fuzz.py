"""No command, however mangled, makes the test switch raise: every answer is a result or an
eAPI error (a crash would answer 1001 and hide the client's real mistake)."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dfagent.lab.eapi import FakeClock, SwitchState
from dfagent.lab.eapi.rpc import handle

pytestmark = pytest.mark.fuzz

WORDS = [
    "show", "directflow", "flow", "flows", "detail", "match", "action", "output", "nexthop",
    "interface", "source", "destination", "ip", "ipv6", "port", "protocol", "tcp", "ethertype",
    "timeout", "idle", "hard", "priority", "persistent", "no", "default", "exit", "end",
    "shutdown", "route-map", "permit", "deny", "set", "local-preference", "prefix-list", "seq",
    "router", "bgp", "neighbor", "peer", "group", "remote-as", "in", "out", "access-list",
    "class-map", "type", "pbr", "match-any", "policy-map", "class", "access-group",
    "traffic-policies", "traffic-policy", "actions", "redirect", "next-hop", "event-handler",
    "trigger", "on-logging", "on-intf", "monitor", "session", "tunnel", "mode", "gre",
    "load-balance", "ingress-interface", "src-ipv4-address", "running-config", "section", "|",
    "include", "hostname", "version", "ge", "le", "eq", "host", "any", "syn", "Ethernet1", "Et2",
    "10", "0", "65536", "-1", "300", "10.0.0.1", "10.0.0.0/24", "2001:db8::1", "2001:db8::/32",
    "255.255.255.0", "DFA-x", "a.b", "[", "(", "",
]  # fmt: skip


# Valid command sequences, in an order EOS accepts: the fuzzer keeps their order (so it
# reaches the deep modes) and drops, swaps, repeats or cuts words here and there.
SCENARIOS = [
    ["directflow", "no shutdown", "flow DFA-x", "match ethertype ip", "match ethertype ipv6",
     "match source ip 10.0.0.1", "match destination ipv6 2001:db8::1", "match ip protocol tcp",
     "match source port 10", "match destination port 80", "action output nexthop 10.0.0.2",
     "action output interface Et1", "priority 7", "action drop", "timeout idle 300",
     "timeout hard 5", "no persistent", "flow DFA-y", "match input interface Et1 Po2",
     "no match source port", "no flow DFA-x", "shutdown"],
    ["ip prefix-list P seq 10 permit 10.0.0.1/32", "ipv6 prefix-list P6",
     "seq 5 deny 2001:db8::/32 le 64", "route-map R permit 10", "match ip next-hop prefix-list P",
     "match ipv6 address prefix-list P6", "set local-preference 1", "route-map R deny 20",
     "router bgp 65000", "neighbor G peer group", "neighbor 10.0.0.9 peer group G",
     "neighbor G route-map R in", "maximum-paths 4 ecmp 4", "no neighbor G route-map R in",
     "no route-map R permit 10", "no ip prefix-list P seq 10"],
    ["ip access-list A", "10 permit tcp host 10.0.0.1 eq 1 host 10.0.0.2 eq 2 syn",
     "class-map type pbr match-any C", "match ip access-group A", "policy-map type pbr P",
     "class C", "set nexthop 10.0.0.3", "interface Ethernet1", "service-policy type pbr input P",
     "no class-map type pbr match-any C", "policy-map type pbr P", "no class C"],
    ["traffic-policies", "traffic-policy T", "match M ipv4", "source prefix 10.0.0.0/24",
     "protocol tcp source port 1 destination port 2", "actions", "redirect next-hop 10.0.0.4",
     "count K", "no match M ipv4", "interface Et3", "traffic-policy input T"],
    ["event-handler H", "trigger on-logging", "regex X", "poll interval 2", "action bash x y",
     "delay 1", "asynchronous", "monitor session S source Et1 rx ip access-group A",
     "monitor session S destination tunnel mode gre source 1.1.1.1 destination 2.2.2.2"],
    ["show directflow detail", "show ip route 10.0.0.1", "show ip bgp", "exit", "end",
     "show load-balance destination ip ingress-interface Et1 src-ipv4-address 1.1.1.1 "
     "dst-ipv4-address 2.2.2.2 ip-protocol 6 src-l4-port 1 dst-l4-port 2"],
]  # fmt: skip


def mutate(draw: st.DrawFn, command: str) -> str:
    words = command.split()
    how = draw(st.sampled_from(["drop", "swap", "dup", "cut"]))
    i = draw(st.integers(0, len(words) - 1))
    if how == "drop":
        del words[i]
    elif how == "swap":
        words[i] = draw(st.sampled_from(WORDS))
    elif how == "dup":
        words.insert(i, words[i])
    elif how == "cut":
        words = words[:i]
    return " ".join(words)


@st.composite
def scenario(draw: st.DrawFn) -> list[str]:
    """Pieces of one or more scenarios, in order, at most one command mangled (an error ends
    the request, so the commands before it must be valid to reach deep modes)."""
    out: list[str] = []
    for _ in range(draw(st.integers(1, 3))):
        cmds = draw(st.sampled_from(SCENARIOS))
        keep = draw(st.lists(st.booleans(), min_size=len(cmds), max_size=len(cmds)))
        out += [c for c, k in zip(cmds, keep, strict=True) if k or c == cmds[0]]
    if draw(st.booleans()):
        i = draw(st.integers(0, len(out) - 1))
        out[i] = mutate(draw, out[i])
    return out


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario(), st.booleans(), st.booleans())
def test_mutated_valid_commands_answer_without_crashing(
    cmds: list[str], text: bool, auto: bool
) -> None:
    check(cmds, text, auto)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.lists(st.sampled_from(WORDS), min_size=0, max_size=8).map(" ".join),
        min_size=1,
        max_size=12,
    ),
    st.booleans(),
    st.booleans(),
)
def test_any_command_sequence_answers_without_crashing(
    cmds: list[str], text: bool, auto: bool
) -> None:
    check(cmds, text, auto)


def check(cmds: list[str], text: bool, auto: bool) -> None:
    state = SwitchState(clock=FakeClock(), directflow_enabled=True)
    crashes: list[str] = []
    body = {
        "jsonrpc": "2.0",
        "method": "runCmds",
        "id": 1,
        "params": {
            "version": 1,
            "cmds": ["enable", "configure", *cmds, "end", "show running-config"],
            "format": "text" if text else "json",
            "autoComplete": auto,
        },
    }
    answer = handle(state, json.dumps(body).encode(), internal_error=crashes.append)
    assert not crashes, crashes[0]
    if "error" in answer:
        assert answer["error"]["code"] in (1002, 1003, 1005)
    json.dumps(answer)  # always serialisable
