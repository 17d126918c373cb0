"""EOS renderers (pure): flow names, pins per profile, drain, event handlers — golden files
in tests/eos/golden/ (DFAGENT_UPDATE_GOLDEN=1 rewrites them)."""

from __future__ import annotations

import os
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dfagent.backends.eos import drainconf, hooks
from dfagent.backends.eos.names import check_prefix, flow_name, is_ours, parse_name
from dfagent.backends.eos.render import DirectFlowRenderer, Item, renderer_for
from dfagent.core.pintable import Flow

GOLDEN = Path(__file__).parent / "golden"
V4 = Flow("198.51.100.7", "192.0.2.10", 40001, 443)
V6 = Flow("2001:db8:1::7", "2001:db8::10", 40002, 80)


def golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("DFAGENT_UPDATE_GOLDEN") or not path.exists():
        path.write_text(text)
    assert text == path.read_text(), f"{name} differs (DFAGENT_UPDATE_GOLDEN=1 rewrites it)"


# ── names ────────────────────────────────────────────────────────────────────────────────
def test_names_hold_no_character_eos_refuses_and_read_back() -> None:
    assert flow_name("dfa1", V4) == "dfa1-198_51_100_7-40001-192_0_2_10-443"
    assert flow_name("dfa1", V6) == "dfa1-2001_db8_1__7-40002-2001_db8__10-80"
    for f in (V4, V6):
        name = flow_name("dfa1", f)
        assert not set(name) & set(" ,./:")
        assert parse_name("dfa1", name) == f


def test_a_prefix_never_claims_another_agents_flows() -> None:
    name = flow_name("dfa10", V4)
    assert not is_ours("dfa1", name) and parse_name("dfa1", name) is None
    assert is_ours("dfa10", name)
    assert parse_name("dfa1", "dfa1-operator-flow") is None  # ours by prefix, no flow
    assert parse_name("dfa1", "dfa1-010_0_0_1-1-192_0_2_10-80") is None  # not canonical
    assert parse_name("dfa1", "dfa1-10_0_0_1-1-2001_db8__1-80") is None  # mixed families


def test_prefixes_that_would_break_names_are_refused() -> None:
    assert check_prefix("dfa_s1") is None
    for bad in ("dfa-s1", "1dfa", "", "dfa.s1", "d" * 25):
        assert check_prefix(bad) is not None


@given(
    st.ip_addresses(v=4) | st.ip_addresses(v=6),
    st.integers(1, 65535),
    st.integers(1, 65535),
    st.data(),
)
def test_any_flow_round_trips_through_its_name(
    src: IPv4Address | IPv6Address, sport: int, dport: int, data: st.DataObject
) -> None:
    dst = data.draw(st.ip_addresses(v=src.version))
    f = Flow(str(src), str(dst), sport, dport)
    name = flow_name("agent_7", f)
    assert parse_name("agent_7", name) == f
    assert not set(name) & set(" ,./") and len(name) <= 100


# ── pins ─────────────────────────────────────────────────────────────────────────────────
def _batch(method: str) -> str:
    r = renderer_for(method, idle_timeout=300, interfaces=("Ethernet1", "Ethernet2"))
    b = r.batch(
        [Item("dfa1-old", Flow("198.51.100.9", "192.0.2.10", 1234, 443))],
        [
            Item(flow_name("dfa1", V4), V4, "10.2.1.2"),
            Item(flow_name("dfa1", V6), V6, "2001:db8:2::2"),
        ],
    )
    return "\n".join(["! setup", *r.setup(), "! batch", *b.cmds]) + "\n"


@pytest.mark.parametrize("method", ["directflow", "traffic-policy", "pbr"])
def test_pin_batches_golden(method: str) -> None:
    golden(f"pins-{method}.txt", _batch(method))


def test_batch_names_the_pin_of_each_command() -> None:
    r = DirectFlowRenderer()
    b = r.batch([Item("x", V4)], [Item("a", V4, "10.0.0.1"), Item("b", V6, "%Ethernet3")])
    assert b.item_at(0) is None  # "directflow"
    assert b.item_at(1) == Item("x", V4)
    a = b.item_at(2)
    assert a is not None and a.name == "a" and b.cmds[2] == "flow a"
    i = b.cmds.index("flow b")
    item_b = b.item_at(i + 7)
    assert item_b is not None and item_b.name == "b"
    assert b.cmds[i + 7] == "action output interface Ethernet3"
    assert b.item_at(len(b.cmds) - 1) is None  # the closing "exit"


# ── drain ────────────────────────────────────────────────────────────────────────────────
SPEC = drainconf.DrainSpec(65000, ("SERVERS", "10.1.0.9"), "DFAGENT-DRAIN", "DRAIN4", "DRAIN6")


def test_drain_and_undrain_golden() -> None:
    first = drainconf.drain_lines(SPEC, {}, ["10.2.1.2"])
    second = drainconf.drain_lines(SPEC, {"10.2.1.2": 10}, ["10.2.2.2", "2001:db8:2::2"])
    again = drainconf.drain_lines(SPEC, {"10.2.1.2": 10}, ["10.2.1.2"])
    state = {"10.2.1.2": 10, "10.2.2.2": 20, "2001:db8:2::2": 10}
    some = drainconf.undrain_lines(SPEC, state, ["2001:db8:2::2"])
    last = drainconf.undrain_lines(SPEC, {"10.2.1.2": 10}, ["10.2.1.2"])
    assert again == [] and drainconf.undrain_lines(SPEC, {}, ["10.2.1.2"]) == []
    text = ""
    for title, lines in (
        ("drain s1", first), ("drain s2 (v4 + v6)", second), ("undrain s2 v6", some),
        ("undrain the last", last),
    ):  # fmt: skip
        text += f"! {title}\n" + "\n".join(lines) + "\n"
    golden("drain.txt", text)


def test_drained_next_hops_read_back_in_both_running_config_forms() -> None:
    flat = (
        "ip prefix-list DRAIN4 seq 10 permit 10.2.1.2/32\n"
        "ip prefix-list OTHER seq 5 permit 10.9.9.9/32\n"
    )
    block = (
        "ip prefix-list DRAIN4\n   seq 10 permit 10.2.1.2/32\n   seq 20 permit 10.2.2.0/24\n"
        "!\nipv6 prefix-list DRAIN6\n   seq 10 permit 2001:db8:2::2/128\n!\n"
        "route-map X permit 10\n   seq 30 permit 10.3.3.3/32\n"
    )
    assert drainconf.drained_from_config(SPEC, flat) == {"10.2.1.2": 10}
    assert drainconf.drained_from_config(SPEC, block) == {"10.2.1.2": 10, "2001:db8:2::2": 10}


# ── event handlers ───────────────────────────────────────────────────────────────────────
def test_event_handlers_golden() -> None:
    lines = hooks.event_handlers(interfaces=["Ethernet1", "Ethernet3/1"])
    golden("event-handlers.txt", hooks.as_config(lines))
    remote = hooks.event_handlers(hooks.remote_action("s1.example.net"))
    assert "action bash ssh -o BatchMode=yes root@s1.example.net dfagent resync" in remote
    with pytest.raises(ValueError, match="interface name"):
        hooks.event_handlers(interfaces=["Ethernet1; reboot"])
