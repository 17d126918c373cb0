"""The EOS backend over the unmodified pyeapi client against the eAPI test switch: pins,
batching, reconcile after a restart, capacity overflow and eviction, rejected flows, auth
failure, switch down and back, three agents on one switch."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pyeapi
import pytest

from dfagent.backends.eos.names import flow_name
from dfagent.backends.eos.session import EosAuthError, EosError
from dfagent.lab.eapi import EapiSwitch
from tests.eos.helpers import VIP, VIP6, backend, fake_clock, flow, flow_entry, item


def test_pin_writes_a_directflow_flow_the_switch_programs(eapi_switch: EapiSwitch) -> None:
    b = backend(eapi_switch)
    b.start()
    assert eapi_switch.state.flows.enabled  # the backend turned DirectFlow on
    b.pin([item(1, "10.2.1.2"), item(2, "2001:db8:2::2", dst=VIP6)])
    e = eapi_switch.state.flow(flow_name("dfa_s1", flow(1)))
    assert e is not None and e.programmed
    c = e.config
    assert (str(c.src), str(c.dst), c.sport, c.dport, c.ip_proto) == (
        f"{flow(1).src}/32", f"{VIP}/32", flow(1).sport, 443, 6,
    )  # fmt: skip
    got = (str(c.nexthop), c.idle_timeout, c.persistent, c.priority)
    assert got == ("10.2.1.2", 300, False, 100)
    e6 = eapi_switch.state.flow(flow_name("dfa_s1", flow(2, VIP6)))
    assert e6 is not None and e6.programmed
    assert e6.config.nexthop == ipaddress.ip_address("2001:db8:2::2")
    assert b.table.stats.installed == 2 and b.stats.write_errors == 0


def test_many_flows_go_in_one_request(eapi_switch: EapiSwitch) -> None:
    b = backend(eapi_switch, rate_limit=100_000)
    b.start()
    before = len(eapi_switch.requests)
    b.pin([item(i) for i in range(150)])
    writes = list(eapi_switch.requests)[before:]
    assert len(writes) == 1 and len(writes[0].cmds) > 150 * 10
    assert eapi_switch.state.flows.used() == 150
    b.pin([item(i) for i in range(150, 500)])  # max_batch 200: two requests
    assert len(eapi_switch.requests) - before == 1 + 2
    assert eapi_switch.state.flows.used() == 500


def test_the_rate_limit_defers_pins_and_asks_to_be_called_back(eapi_switch: EapiSwitch) -> None:
    b = backend(eapi_switch, rate_limit=1000)  # burst: max(max_batch 200, rate / 10)
    asked: list[float] = []
    b.schedule = asked.append
    b.start()
    b.pin([item(i) for i in range(300)])
    assert eapi_switch.state.flows.used() == 200 and len(b.backlog.install) == 100
    assert asked and 0.09 < asked[-1] <= 0.11  # 100 tokens at 1,000/s
    fake_clock(eapi_switch).advance(0.1)
    b.flush()
    assert eapi_switch.state.flows.used() == 300 and not b.backlog
    assert b.stats.deferred == 100


def _node(sw: EapiSwitch) -> pyeapi.client.Node:
    return pyeapi.client.connect(**sw.connect_args(), return_node=True)


def _flow_cmds(name: str, dst: str = VIP) -> list[str]:
    return ["directflow", f"flow {name}", "match ethertype ip", f"match destination ip {dst}",
            "action output nexthop 10.9.9.9", "exit", "exit"]  # fmt: skip


def test_a_restarted_agent_adopts_its_flows_and_clears_only_its_leftovers(
    eapi_switch: EapiSwitch,
) -> None:
    sw = eapi_switch
    first = backend(sw)
    first.start()
    first.pin([item(i) for i in range(10)])
    node = _node(sw)
    node.config(_flow_cmds("OPERATOR-web"))  # an operator's flow
    node.config(_flow_cmds("dfa_s1-junk"))  # our prefix, no flow: a leftover
    node.config(_flow_cmds(flow_name("dfa_s1", flow(99, "203.0.113.5")), "203.0.113.5"))  # no VIP
    fake_clock(sw).advance(200)
    for i in range(5):
        sw.state.count(flow_name("dfa_s1", flow(i)), packets=3)
    fake_clock(sw).advance(150)  # 5..9 idle for 350 s: the switch aged them out
    second = backend(sw)  # a new process: empty table
    second.start()
    assert second.table.stats.adopted == 5 and set(second.table.pins) == {flow(i) for i in range(5)}
    assert second.table.stats.expired == 5 and second.table.stats.stale == 2
    names = {e.name for e in sw.state.flows.entries()}
    assert names == {flow_name("dfa_s1", flow(i)) for i in range(5)} | {"OPERATOR-web"}
    assert all(flow_entry(sw, flow_name("dfa_s1", flow(i))).programmed for i in range(5))


def test_a_pin_the_switch_lost_while_active_is_put_back(eapi_switch: EapiSwitch) -> None:
    b = backend(eapi_switch)
    b.start()
    b.pin([item(i) for i in range(4)])
    _node(eapi_switch).config(["directflow", f"no flow {flow_name('dfa_s1', flow(2))}"])
    b.reconcile()
    assert b.table.stats.lost == 1
    assert flow_entry(eapi_switch, flow_name("dfa_s1", flow(2))).programmed


def test_over_its_share_the_least_recently_active_pins_are_evicted(
    eapi_switch: EapiSwitch,
) -> None:
    sw = eapi_switch
    b = backend(sw, max_flows=10)
    b.start()
    b.pin([item(i) for i in range(10)])
    b.reconcile()  # the counters' first look
    fake_clock(sw).advance(5)
    for i in (0, 1, 2, 3, 4, 7):
        sw.state.count(flow_name("dfa_s1", flow(i)), packets=2)
    b.reconcile()  # 0-4 and 7 were active since
    fake_clock(sw).advance(1)
    b.pin([item(i) for i in range(100, 103)])
    assert b.table.stats.evicted == 3
    gone = {i for i in range(10) if sw.state.flow(flow_name("dfa_s1", flow(i))) is None}
    assert len(gone) == 3 and gone <= {5, 6, 8, 9}
    assert sw.state.flows.used() == 10
    b.pin([item(i) for i in range(200, 215)])  # more than the share in one batch: counted
    assert b.table.stats.overflow == 5 and sw.state.flows.used() == 10


def test_flows_the_full_tcam_rejects_are_detected_counted_and_retried(
    eapi_switch: EapiSwitch,
) -> None:
    sw = eapi_switch
    sw.state.set_capacity(20)
    other = backend(sw, prefix="dfa_s2")
    other.start()
    other.pin([item(i, "10.2.2.2") for i in range(1000, 1015)])
    b = backend(sw)  # the profile says 1,500: the switch knows better
    b.start()
    b.pin([item(i) for i in range(10)])
    statuses = [e.status for e in sw.state.flows.entries() if e.name.startswith("dfa_s1-")]
    assert statuses.count("Flow rejected due to insufficient resources") == 5
    b.reconcile()
    assert b.table.stats.rejected == 5 and b.table.room == 5
    # the rejected flows left the switch's config; they come back after the backoff
    assert len([e for e in sw.state.flows.entries() if e.name.startswith("dfa_s1-")]) == 5
    fake_clock(sw).advance(1.1)
    b.reconcile()
    assert b.table.stats.retried == 5
    mine = [e for e in sw.state.flows.entries() if e.name.startswith("dfa_s1-")]
    assert len(mine) == 5 and all(e.programmed for e in mine)  # 5 older evicted for them
    assert len([e for e in sw.state.flows.entries() if e.name.startswith("dfa_s2-")]) == 15


def test_a_wrong_password_is_one_clear_error_and_counted(eapi_switch: EapiSwitch) -> None:
    from dfagent.backends.eos.factory import build_backend
    from tests.eos.helpers import PASSWORD_ENV, config

    b = build_backend(config(eapi_switch), environ={PASSWORD_ENV: "wrong"},
                      clock=eapi_switch.clock.now)  # fmt: skip
    with pytest.raises(EosAuthError) as exc:
        b.start()
    assert str(exc.value) == (
        f"switch sw1: http://127.0.0.1:{eapi_switch.port} refused user 'dfagent' (HTTP 401): "
        "check the username and the password in the environment variable the config names"
    )
    assert b.session.counters["error:auth"] == 1 and not b.session.up


def test_switch_down_and_back_pins_stay_and_the_backlog_is_written(
    eapi_switch: EapiSwitch,
) -> None:
    sw = eapi_switch
    b = backend(sw)
    asked: list[float] = []
    b.schedule = asked.append
    b.start()
    b.pin([item(i) for i in range(5)])
    sw.stop()
    b.pin([item(i) for i in range(5, 8)])
    assert len(b.backlog.install) == 3 and b.stats.by_kind == {"unreachable": 1}
    assert not b.session.up and asked[-1] == pytest.approx(0.5)
    b.pin([item(8)])  # while backing off: not tried, kept
    b.reconcile()
    assert b.session.counters["requests"] == 4 and len(b.backlog.install) == 4  # none tried
    sw.start()  # back on the same port, its flows kept
    fake_clock(sw).advance(0.6)
    b.flush()
    assert not b.backlog and sw.state.flows.used() == 9
    b.reconcile()
    assert b.table.stats.lost == 0 and len(b.table.pins) == 9
    sw.faults.delay = 3.0  # slower than the 2 s timeout
    b.pin([item(20)])
    assert b.stats.by_kind["timeout"] == 1 and len(b.backlog.install) == 1
    sw.faults.delay = 0.0
    fake_clock(sw).advance(1.1)  # the backoff doubled: 1 s
    b.flush()
    assert not b.backlog and sw.state.flows.used() == 10


def test_three_agents_on_one_switch_never_undo_each_other(eapi_switch: EapiSwitch) -> None:
    sw = eapi_switch
    agents = [backend(sw, prefix=p) for p in ("dfa_s1", "dfa_s2", "dfa_s10")]
    for n, a in enumerate(agents):
        a.start()
        a.pin([item(i, f"10.2.{n + 1}.2") for i in range(n * 100, n * 100 + 30)])
    _node(sw).config(_flow_cmds("OPERATOR-web"))
    for a in agents:  # every reconcile sees the others' flows and leaves them
        a.reconcile()
        assert a.table.foreign == 61 and a.table.stats.stale == 0 and len(a.table.pins) == 30
    restarted = backend(sw, prefix="dfa_s1")
    restarted.start()
    assert restarted.table.stats.adopted == 30
    assert restarted.cleanup() == 30
    left = {e.name.split("-")[0] for e in sw.state.flows.entries()}
    assert left == {"dfa_s2", "dfa_s10", "OPERATOR"}
    assert sw.state.flows.used() == 61
    for a in agents[1:]:
        a.reconcile()
        assert a.table.stats.lost == 0 and len(a.table.pins) == 30


def test_a_refused_command_names_its_pin_and_the_rest_of_the_batch_is_written(
    eapi_switch: EapiSwitch,
) -> None:
    b = backend(eapi_switch)
    b.start()
    # an interface name EOS refuses (the renderer passes it through): only that pin fails
    b.pin([item(1), item(2, "%Bogus0"), item(3)])
    assert b.stats.write_errors == 1 and b.table.stats.rejected == 1
    assert flow_entry(eapi_switch, flow_name("dfa_s1", flow(1))).programmed
    assert flow_entry(eapi_switch, flow_name("dfa_s1", flow(3))).programmed
    assert eapi_switch.state.flow(flow_name("dfa_s1", flow(2))) is None  # half-written: removed
    assert "Invalid input" in b.stats.last_error and "Bogus0" in b.stats.last_error


def test_errors_are_eos_errors_with_kinds(eapi_switch: EapiSwitch) -> None:
    b = backend(eapi_switch)
    with pytest.raises(EosError) as exc:
        b.session.run(["show bogus"])
    assert exc.value.kind == "command" and "show bogus" in str(exc.value)
    with pytest.raises(EosError) as exc:
        b.session.run(["show running-config"])  # json: no JSON model
    assert exc.value.kind == "unconverted"


def test_https_verifies_the_switch_certificate(tmp_path: Path) -> None:
    from dfagent.lab.eapi import FakeClock, make_self_signed_cert

    tls = make_self_signed_cert(tmp_path)
    sw = EapiSwitch(username="dfagent", password="eapi-test-pw", clock=FakeClock(), tls=tls)
    sw.start()
    try:
        trusted = backend(sw, transport="https", tls_ca=tls[0])
        trusted.start()
        trusted.pin([item(1)])
        assert sw.state.flows.used() == 1
        with pytest.raises(EosError) as exc:
            backend(sw, transport="https").start()  # verify on, CA not given
        assert "TLS certificate of https://127.0.0.1:" in str(exc.value)
        assert "not trusted" in str(exc.value)
        backend(sw, transport="https", verify_tls=False).start()  # a lab's choice
    finally:
        sw.close()


def test_one_connection_kept_open_and_reopened_when_the_switch_closed_it(
    eapi_switch: EapiSwitch,
) -> None:
    b = backend(eapi_switch)
    b.start()
    for i in range(5):
        b.pin([item(i)])
    assert b.session.counters["connects"] == 1 and b.session.counters["requests"] >= 7
    eapi_switch.stop()  # cuts the open connection
    eapi_switch.start()
    b.pin([item(9)])  # the kept connection is dead: one quiet retry on a new one
    c = b.session.counters
    assert c["reconnects"] == 1 and c["error:unreachable"] == 0 and not b.backlog
    assert eapi_switch.state.flows.used() == 6


def test_the_on_box_unix_socket_transport(tmp_path: Path) -> None:
    from dfagent.lab.eapi import FakeClock

    path = str(tmp_path / "command-api.sock")
    sw = EapiSwitch(username="dfagent", password="eapi-test-pw", clock=FakeClock(),
                    unix_socket=path)  # fmt: skip
    sw.start()
    try:
        b = backend(sw, transport="socket", endpoint=None, socket_path=path, name="local")
        b.start()
        b.pin([item(1), item(2)])
        b.pin([item(3)])
        assert sw.state.flows.used() == 3 and b.session.counters["connects"] == 1
    finally:
        sw.close()
