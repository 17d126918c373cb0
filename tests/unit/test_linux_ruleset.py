"""The rendered nft script against golden files (regenerate: DFAGENT_UPDATE_GOLDEN=1)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dfagent.backends.linux.flowhash import flow6_hash
from dfagent.backends.linux.ruleset import (
    RulesetConfig,
    flow_element,
    nh_map_keys,
    pin_element,
    render_base,
    render_elements,
    render_slot_chains,
)
from dfagent.core.marks import MarkSpace
from dfagent.core.nexthops import NextHop, parse_vip

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "golden"
VIPS = (parse_vip("1.1.1.1/32"), parse_vip("2001:db8::1/128"), parse_vip("1.1.2.0/24"))

# (client port, hash) of fd00::2 → [2001:db8::1]:8080 as this kernel's nft jhash'ed it
KERNEL_SAMPLE = (35070, 4091193130)

CASES = {
    "kernel-mode.nft": RulesetConfig(VIPS),
    "kernel-ct-copy.nft": RulesetConfig(VIPS, ct_copy=True),
    "map-mode.nft": RulesetConfig(VIPS, record=False, pin_maps=True),
    "empty-vips.nft": RulesetConfig(()),
    # per-VIP protocols: 1.1.1.1 pins UDP too, the others TCP alone
    "kernel-udp.nft": RulesetConfig(VIPS, protocols=((VIPS[0], ("tcp", "udp")),)),
    # the router sees one direction only: per-flow maps instead of conntrack
    "kernel-one-direction.nft": RulesetConfig(VIPS, one_direction=True),
    # non-VIP traffic untracked, and the SYN-flood guard (VIP entries from the first ACK)
    "kernel-untrack.nft": RulesetConfig(VIPS, untrack_others=True, syn_untracked=True),
    "map-one-direction-notrack.nft": RulesetConfig(
        VIPS, record=False, pin_maps=True, one_direction=True, notrack=True
    ),
}


def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(os.environ.get("DFAGENT_UPDATE_GOLDEN")) or bool(
        request.config.getoption("--update-golden", default=False)
    )


@pytest.mark.parametrize("name", sorted(CASES))
def test_render_base_golden(name: str, request: pytest.FixtureRequest) -> None:
    text = render_base(CASES[name])
    path = GOLDEN / name
    if update_golden(request) or not path.exists():
        path.write_text(text)
    assert text == path.read_text()


def test_nexthop_map_keys() -> None:
    assert nh_map_keys(NextHop(4, "eth1", "10.0.1.2"), []) == [("nh4", '"eth1" . 10.0.1.2')]
    assert nh_map_keys(NextHop(6, "eth1", "fe80::1"), []) == [("nh6", '"eth1" . fe80::1')]
    # RFC 5549: rt ip nexthop is the destination, so one key per /32 VIP
    assert nh_map_keys(NextHop(4, "swp1", "fe80::1"), ["1.1.1.1/32", "1.1.2.0/24"]) == [
        ("nh4", '"swp1" . 1.1.1.1')
    ]


def test_elements() -> None:
    assert render_elements("add", "nh4", []) == ""
    assert (
        render_elements("delete", "released", ["0x0dfa0001"])
        == "delete element inet dfagent released { 0x0dfa0001 }\n"
    )
    assert pin_element("10.0.0.2", "1.1.1.1", 40000, 80, 0x0DFA0001) == (
        "pin4",
        "10.0.0.2 . 1.1.1.1 . 40000 . 80 : jump pin_0dfa0001",
    )
    assert pin_element("fd00::2", "2001:db8::1", 1, 2, None) == (
        "pin6",
        "fd00::2 . 2001:db8::1 . 1 . 2",
    )


def test_one_direction_rules_do_not_need_conntrack() -> None:
    """Every one-direction rule works on packets conntrack calls INVALID or untracked."""
    text = render_base(RulesetConfig(VIPS, one_direction=True))
    added = text.split("flush chain inet dfagent raw\n", 1)[1]
    assert "ct " not in added
    # kernel mode records into the flow map (in the next hop's rec_ chain), not conntrack
    assert "rt ip nexthop vmap @nh4" in text and "ct mark set" not in added
    chains = render_slot_chains(MarkSpace(), 0x0DFA0001, False, one_direction=True, family=4)
    assert "update @flow4 { ip saddr . ip daddr . tcp sport . tcp dport : 0x08010000 }" in chains
    assert "ct mark" not in chains.split("rec_0dfa0001\n", 2)[2].split("\n")[0]
    # the symmetric modes are unchanged by the option's existence
    assert "@flow" not in render_base(RulesetConfig(VIPS))
    assert "notrack" not in render_base(RulesetConfig(VIPS, one_direction=True))


def test_flow6_hash_matches_kernel() -> None:
    """The jhash nft computed for a real IPv6 flow on this kernel (recorded by an
    ``update @m { jhash ip6 saddr . ip6 daddr . tcp sport . tcp dport mod 4294967295 seed
    0xdfa : 0x1 }`` rule in a namespace and listed)."""
    assert flow6_hash("fd00::2", "2001:db8::1", int(KERNEL_SAMPLE[0]), 8080) == KERNEL_SAMPLE[1]
    space = MarkSpace()
    assert flow_element(space, "10.0.0.2", "1.1.1.1", 1, 2, 0x0DFA0001) == (
        "flow4",
        "10.0.0.2 . 1.1.1.1 . 1 . 2 : 0x08010000",
    )
    assert flow_element(space, "fd00::2", "2001:db8::1", int(KERNEL_SAMPLE[0]), 8080, None) == (
        "flow6",
        str(KERNEL_SAMPLE[1]),
    )
