"""DirectFlow on the eAPI test switch through pyeapi: batches, capacity, timeouts, counters,
removal, the grammar EOS accepts, and the observer hooks a lab datapath will use."""

from __future__ import annotations

from typing import Any

import pyeapi
import pytest
from pyeapi.eapilib import CommandError

from dfagent.lab.eapi import (
    STATUS_NOT_PROGRAMMED,
    STATUS_PROGRAMMED,
    STATUS_REJECTED,
    EapiSwitch,
    FakeClock,
    FlowEntry,
    FlowObserver,
)
from tests.eos.test_eapi_switch import flow_cmds, node


def detail(n: pyeapi.client.Node) -> dict[str, str]:
    return n.enable("show directflow detail")[0]["result"]["details"]["status"]


def shown(n: pyeapi.client.Node) -> dict[str, dict[str, Any]]:
    return {f["name"]: f for f in n.enable("show directflow flows")[0]["result"]["flows"]}


class Recorder(FlowObserver):
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []

    def flow_installed(self, entry: FlowEntry) -> None:
        self.events.append(("installed", entry.name, ""))

    def flow_removed(self, entry: FlowEntry, reason: str) -> None:
        self.events.append(("removed", entry.name, reason))

    def flow_expired(self, entry: FlowEntry, reason: str) -> None:
        self.events.append(("expired", entry.name, reason))


def test_batch_of_50_flows_in_one_request(eapi_switch: EapiSwitch) -> None:
    cmds = ["directflow", "no shutdown"]
    for i in range(50):
        cmds += flow_cmds(f"DFA-b{i}", f"198.51.100.{i + 1}", 30000 + i)
    result = node(eapi_switch).config(cmds)
    assert result == [{}] * len(cmds)
    assert len(eapi_switch.requests) == 1  # one HTTP request, one runCmds
    assert len(eapi_switch.requests[0].cmds) == len(cmds) + 2  # + enable, configure terminal
    status = detail(node(eapi_switch))
    assert len(status) == 50 and set(status.values()) == {STATUS_PROGRAMMED}
    assert eapi_switch.state.flows.used() == 50


def test_directflow_ships_shut_down(eapi_switch: EapiSwitch) -> None:
    n = node(eapi_switch)
    n.config(["directflow", *flow_cmds("DFA-s", "198.51.100.1", 1)])
    assert detail(n) == {"DFA-s": STATUS_NOT_PROGRAMMED}
    assert shown(n) == {}
    n.config(["directflow", "no shutdown"])
    assert detail(n) == {"DFA-s": STATUS_PROGRAMMED}
    n.config(["directflow", "shutdown"])
    assert detail(n) == {"DFA-s": STATUS_NOT_PROGRAMMED}
    assert "   shutdown" in n.enable("show running-config")[0]["result"]["output"]


def test_capacity_rejects_like_a_full_tcam(eapi_switch: EapiSwitch) -> None:
    eapi_switch.state.set_capacity(3)
    n = node(eapi_switch)
    cmds = ["directflow", "no shutdown"]
    for i in range(5):
        cmds += flow_cmds(f"DFA-c{i}", f"198.51.100.{i + 1}", 100 + i)
    assert n.config(cmds) == [{}] * len(cmds)  # accepted in config, as EOS does
    status = detail(n)
    assert [status[f"DFA-c{i}"] for i in range(5)] == [STATUS_PROGRAMMED] * 3 + [
        STATUS_REJECTED
    ] * 2
    assert status["DFA-c4"] == "Flow rejected due to insufficient resources"
    assert sorted(shown(n)) == ["DFA-c0", "DFA-c1", "DFA-c2"]
    numbers = n.enable("show directflow detail")[0]["result"]["details"]["numFlowsProgrammed"]
    assert numbers == 3
    # Space freed: rejected flows stay rejected until the client commits them again.
    n.config(["directflow", "no flow DFA-c0"])
    assert detail(n)["DFA-c3"] == STATUS_REJECTED
    n.config(["directflow", "flow DFA-c3"])
    assert detail(n)["DFA-c3"] == STATUS_PROGRAMMED
    assert detail(n)["DFA-c4"] == STATUS_REJECTED
    # Rejected flows are still configured (the running config lists them).
    text = n.enable("show running-config")[0]["result"]["output"]
    assert "   flow DFA-c4\n" in text and "   flow DFA-c0\n" not in text


def test_capacity_with_reprogramming_when_space_frees(eapi_switch: EapiSwitch) -> None:
    eapi_switch.state.set_capacity(1)
    eapi_switch.state.flows.reprogram_rejected = True
    n = node(eapi_switch)
    n.config(["directflow", "no shutdown", *flow_cmds("DFA-1", "198.51.100.1", 1)])
    n.config(["directflow", *flow_cmds("DFA-2", "198.51.100.2", 2)])
    assert detail(n) == {"DFA-1": STATUS_PROGRAMMED, "DFA-2": STATUS_REJECTED}
    n.config(["directflow", "no flow DFA-1"])
    assert detail(n) == {"DFA-2": STATUS_PROGRAMMED}


def test_ipv6_flows_may_take_two_entries(eapi_switch: EapiSwitch) -> None:
    eapi_switch.state.set_capacity(3)
    eapi_switch.state.flows.ipv6_entries = 2  # Trident's double-wide IPv6 keys
    n = node(eapi_switch)
    v6 = ["match ethertype ipv6", "match source ipv6 2001:db8::7"]
    n.config(["directflow", "no shutdown", "flow DFA-6a", *v6, "flow DFA-4", "match ethertype ip",
              "flow DFA-6b", *v6])  # fmt: skip
    assert detail(n) == {
        "DFA-6a": STATUS_PROGRAMMED, "DFA-4": STATUS_PROGRAMMED, "DFA-6b": STATUS_REJECTED,
    }  # fmt: skip
    assert eapi_switch.state.flows.used() == 3
    n.config(["directflow", "no flow DFA-6a", "flow DFA-6b"])
    assert detail(n) == {"DFA-4": STATUS_PROGRAMMED, "DFA-6b": STATUS_PROGRAMMED}
    assert eapi_switch.state.flows.used() == 3


def test_idle_timeout_with_the_fake_clock(eapi_switch: EapiSwitch) -> None:
    clock = eapi_switch.clock
    assert isinstance(clock, FakeClock)
    rec = Recorder()
    eapi_switch.state.add_observer(rec)
    n = node(eapi_switch)
    n.config(["directflow", "no shutdown", *flow_cmds("DFA-i", "198.51.100.1", 1)])
    clock.advance(299)
    assert detail(n)["DFA-i"] == STATUS_PROGRAMMED
    eapi_switch.state.count("DFA-i")  # traffic: the idle timer starts again
    clock.advance(299)
    assert detail(n)["DFA-i"] == STATUS_PROGRAMMED
    clock.advance(1)
    assert detail(n)["DFA-i"] == STATUS_NOT_PROGRAMMED  # 300 s after the last packet
    assert shown(n) == {}
    # Expired, still configured (EOS keeps it in the running config until `no flow`).
    assert "flow DFA-i" in n.enable("show running-config")[0]["result"]["output"]
    assert rec.events == [("installed", "DFA-i", ""), ("expired", "DFA-i", "idle")]
    # Committing it again programs it afresh.
    n.config(["directflow", *flow_cmds("DFA-i", "198.51.100.1", 1)])
    assert detail(n)["DFA-i"] == STATUS_PROGRAMMED
    assert rec.events[-1] == ("installed", "DFA-i", "")


def test_counters_from_a_datapath_keep_a_busy_flow(eapi_switch: EapiSwitch) -> None:
    """A lab datapath hands its rule counters over (absolute totals); the switch reads them
    before timeouts and shows, so traffic there restarts the idle timer."""
    clock = eapi_switch.clock
    assert isinstance(clock, FakeClock)
    totals: dict[str, tuple[int, int]] = {}

    class Rules:
        def read(self, names: list[str]) -> dict[str, tuple[int, int]]:
            return {n: totals[n] for n in names if n in totals}

    eapi_switch.state.set_counter_source(Rules())
    n = node(eapi_switch)
    n.config(["directflow", "no shutdown", *flow_cmds("DFA-d", "198.51.100.1", 1)])
    clock.advance(200)
    totals["DFA-d"] = (5, 700)
    assert shown(n)["DFA-d"]["matchPackets"] == 5  # read at this show: activity now
    clock.advance(200)
    assert shown(n)["DFA-d"]["matchBytes"] == 700  # 400 s old, 200 s idle: still there
    clock.advance(100)
    assert shown(n) == {}  # no new packets for 300 s
    assert detail(n)["DFA-d"] == STATUS_NOT_PROGRAMMED


def test_hard_timeout_ignores_traffic(eapi_switch: EapiSwitch) -> None:
    clock = eapi_switch.clock
    assert isinstance(clock, FakeClock)
    n = node(eapi_switch)
    n.config(["directflow", "no shutdown", "flow DFA-h", "match ethertype ip", "timeout hard 60"])
    for _ in range(5):
        clock.advance(11)
        eapi_switch.state.count("DFA-h")
    assert eapi_switch.state.tick() == []
    clock.advance(5)
    assert [e.name for e in eapi_switch.state.tick()] == ["DFA-h"]
    assert detail(n)["DFA-h"] == STATUS_NOT_PROGRAMMED


def test_counters(eapi_switch: EapiSwitch) -> None:
    n = node(eapi_switch)
    n.config(["directflow", "no shutdown", *flow_cmds("DFA-n", "198.51.100.1", 1)])
    assert shown(n)["DFA-n"]["matchPackets"] == 0
    eapi_switch.state.count("DFA-n", packets=5, nbytes=740)
    eapi_switch.state.count("DFA-n", packets=2, nbytes=128)
    flow = shown(n)["DFA-n"]
    assert (flow["matchPackets"], flow["matchBytes"]) == (7, 868)
    text = n.enable("show directflow flows", encoding="text")[0]["result"]["output"]
    assert "matched: 7 packets, 868 bytes" in text
    with pytest.raises(KeyError):
        eapi_switch.state.count("DFA-absent")


def test_no_flow(eapi_switch: EapiSwitch) -> None:
    rec = Recorder()
    eapi_switch.state.add_observer(rec)
    n = node(eapi_switch)
    n.config(["directflow", "no shutdown", *flow_cmds("DFA-x", "198.51.100.1", 1)])
    n.config(["directflow", *flow_cmds("DFA-y", "198.51.100.2", 2)])
    n.config(["directflow", "no flow DFA-x", "no flow DFA-never-existed"])
    assert detail(n) == {"DFA-y": STATUS_PROGRAMMED}
    assert "DFA-x" not in n.enable("show running-config")[0]["result"]["output"]
    assert ("removed", "DFA-x", "deleted") in rec.events
    n.config(["no directflow"])
    assert detail(n) == {}
    assert eapi_switch.state.flows.used() == 0


def test_changed_flow_is_reprogrammed_unchanged_is_left_alone(eapi_switch: EapiSwitch) -> None:
    rec = Recorder()
    eapi_switch.state.add_observer(rec)
    n = node(eapi_switch)
    n.config(["directflow", "no shutdown", *flow_cmds("DFA-r", "198.51.100.1", 1)])
    eapi_switch.state.count("DFA-r", packets=3)
    n.config(["directflow", *flow_cmds("DFA-r", "198.51.100.1", 1)])  # the same again
    assert shown(n)["DFA-r"]["matchPackets"] == 3
    assert rec.events == [("installed", "DFA-r", "")]
    n.config(["directflow", "flow DFA-r", "action output nexthop 10.0.1.3"])
    assert shown(n)["DFA-r"]["matchPackets"] == 0
    assert shown(n)["DFA-r"]["action"]["outputNexthop"] == "10.0.1.3"
    assert rec.events[1:] == [("removed", "DFA-r", "replaced"), ("installed", "DFA-r", "")]


def test_flows_back_to_back_without_exit_and_mode_fallthrough(eapi_switch: EapiSwitch) -> None:
    n = node(eapi_switch)
    n.config(
        [
            "directflow",
            "no shutdown",
            *flow_cmds("DFA-f1", "198.51.100.1", 1),
            *flow_cmds("DFA-f2", "198.51.100.2", 2),  # `flow` is a directflow-mode command
            "router bgp 65000",  # a config-mode command inside a flow: leaves flow, directflow
            "exit",
            "hostname after-flows",
        ]
    )
    assert detail(n) == {"DFA-f1": STATUS_PROGRAMMED, "DFA-f2": STATUS_PROGRAMMED}
    assert eapi_switch.state.hostname == "after-flows"
    assert eapi_switch.state.config.bgp is not None


def test_ipv6_flow(eapi_switch: EapiSwitch) -> None:
    n = node(eapi_switch)
    n.config(
        [
            "directflow",
            "no shutdown",
            "flow DFA-2001-db8--7-40000-2001-db8--a-443",
            "match ethertype ipv6",
            "match source ipv6 2001:db8::7",
            "match destination ipv6 2001:db8::a",
            "match ip protocol tcp",
            "match source port 40000",
            "match destination port 443",
            "action output nexthop fe80::1",
            "priority 100",
        ]
    )
    flow = shown(n)["DFA-2001-db8--7-40000-2001-db8--a-443"]
    assert flow["match"]["ethType"] == 0x86DD
    assert flow["match"]["ipv6Src"]["ip"] == "2001:db8::7"
    assert flow["priority"] == 100


def test_inconsistent_flow_is_not_programmed(eapi_switch: EapiSwitch) -> None:
    n = node(eapi_switch)
    n.config(["directflow", "no shutdown"])
    n.config(["directflow", "flow DFA-noether", "match source ip 198.51.100.1"])
    n.config(["directflow", "flow DFA-portnoproto", "match ethertype ip", "match source port 5"])
    n.config(["directflow", "flow DFA-v4v6", "match ethertype ipv6", "match source ip 10.0.0.1"])
    assert set(detail(n).values()) == {STATUS_NOT_PROGRAMMED}


@pytest.mark.parametrize(
    ("command", "token"),
    [
        ("flow DFA-10.0.0.1", 1),  # flow names: no . , /
        ("flow DFA,x", 1),
        ("flow DFA/x", 1),
        ("flow", None),
        ("flow DFA-ok match ethertype ip", 2),
        ("flows DFA-ok", 0),
    ],
)
def test_bad_flow_names(eapi_switch: EapiSwitch, command: str, token: int | None) -> None:
    with pytest.raises(CommandError) as err:
        node(eapi_switch).config(["directflow", command])
    assert err.value.error_code == 1002
    text = err.value.output[-1]["errors"][0]
    assert (
        text == "Incomplete command"
        if token is None
        else text.startswith(f"Invalid input (at token {token}:")
    )
    assert eapi_switch.state.flows.entries() == []


@pytest.mark.parametrize(
    "line",
    [
        "match source ip 10.0.0.300",
        "match source ip 2001:db8::1",  # ip wants IPv4
        "match source ipv6 10.0.0.1",
        "match source port 70000",
        "match destination prot 80",
        "match ethertype ipx",
        "match ip protocol tcpp",
        "match ip protocol 256",
        "action output nexthp 10.0.0.1",
        "action output nexthop 10.0.0",
        "action output interface Ethernet",
        "action forward",
        "timeout idle",
        "timeout idle -1",
        "timeout soft 10",
        "priority 70000",
        "persistent yes",
        "no persistant",
        "match input interface Gi0/1",
    ],
)
def test_typos_in_a_flow_fail_and_stop_the_request(eapi_switch: EapiSwitch, line: str) -> None:
    cmds = ["directflow", "no shutdown", "flow DFA-t", "match ethertype ip", line, "priority 7"]
    with pytest.raises(CommandError) as err:
        node(eapi_switch).config(cmds)
    assert err.value.error_code == 1002
    assert f"'{line}' failed: invalid command" in err.value.error_text
    data = err.value.output
    assert data[:-1] == [{}] * 6  # enable, configure terminal, 4 commands before the typo
    assert data[-1]["errors"][0].startswith(("Invalid input", "Incomplete command"))
    # Earlier commands are not rolled back (EOS has no transaction): the flow exists,
    # committed when the request ended, but `priority 7` after the typo never ran.
    entry = eapi_switch.state.flow("DFA-t")
    assert entry is not None and entry.config.priority == 0


def test_keywords_case_insensitive_interfaces_long_form(eapi_switch: EapiSwitch) -> None:
    n = node(eapi_switch)
    n.config(
        [
            "directflow",
            "no shutdown",
            "flow DFA-k",
            "MATCH ethertype IP",
            "match input interface Et1 Po10",
            "match source ip 10.0.0.0 255.255.255.0",
            "action output interface Ethernet2/1",
        ]
    )
    flow = shown(n)["DFA-k"]
    assert flow["match"]["inInterfaces"] == ["Ethernet1", "Port-Channel10"]
    assert flow["match"]["ipSrc"] == {"ip": "10.0.0.0", "mask": "255.255.255.0"}
    assert flow["action"]["outInterfaces"] == ["Ethernet2/1"]


def test_no_forms_in_flow_mode(eapi_switch: EapiSwitch) -> None:
    n = node(eapi_switch)
    n.config(["directflow", "no shutdown", *flow_cmds("DFA-nf", "198.51.100.1", 1), "priority 9"])
    n.config(["directflow", "flow DFA-nf", "no match source port", "no timeout idle", "persistent",
              "no priority", "no action output nexthop", "action drop"])  # fmt: skip
    entry = eapi_switch.state.flow("DFA-nf")
    assert entry is not None
    c = entry.config
    assert (c.sport, c.idle_timeout, c.persistent, c.priority, c.nexthop, c.drop) == (
        None, 0, True, 0, None, True,
    )  # fmt: skip
    assert shown(n)["DFA-nf"]["action"]["outputDrop"] is True


def test_startup_config_leaves_out_non_persistent_flows(eapi_switch: EapiSwitch) -> None:
    n = node(eapi_switch)
    n.config(["directflow", "no shutdown", *flow_cmds("DFA-np", "198.51.100.1", 1),
              "flow DFA-p", "match ethertype ip"])  # fmt: skip
    out = n.run_commands(["copy running-config startup-config"])
    assert out == [{"messages": ["Copy completed successfully."]}]
    startup = n.enable("show startup-config")[0]["result"]["output"]
    assert "flow DFA-p\n" in startup and "DFA-np" not in startup


def test_three_clients_at_once(eapi_switch: EapiSwitch) -> None:
    """Agents on three servers pin through one switch concurrently: requests are serialised
    as EOS serialises configuration, nothing is lost or mixed up."""
    import threading

    node(eapi_switch).config(["directflow", "no shutdown"])
    errors: list[BaseException] = []

    def agent(k: int) -> None:
        try:
            n = node(eapi_switch)
            for batch in range(10):
                cmds = ["directflow"]
                for i in range(10):
                    j = batch * 10 + i
                    cmds += flow_cmds(f"DFA-a{k}-{j}", f"198.51.{100 + k}.{j + 1}", 20000 + j)
                n.config(cmds)
        except BaseException as exc:  # reported below, with the thread's failure
            errors.append(exc)

    threads = [threading.Thread(target=agent, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    status = detail(node(eapi_switch))
    assert len(status) == 300 and set(status.values()) == {STATUS_PROGRAMMED}
    for k in range(3):
        entry = eapi_switch.state.flow(f"DFA-a{k}-42")
        assert entry is not None and str(entry.config.src) == f"198.51.{100 + k}.43/32"
