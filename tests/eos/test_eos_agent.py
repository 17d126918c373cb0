"""The agent's one loop with the EOS backend against the test switch: pins from the mirror
path's micro-batches, the rate limit's deferred flush through the loop, periodic reconcile,
and the control API's drain/undrain/flows/purge/status as `dfagent drain s1` uses them."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pyeapi

from dfagent.agent.agent import Agent
from dfagent.agent.eos import build_eos
from dfagent.agent.eos_control import EosControl
from dfagent.backends.eos.drain import EosDrain
from dfagent.core.model import FlowFilter
from dfagent.core.pinbatch import MicroBatcher, PinItem
from dfagent.lab.eapi import EapiSwitch
from tests.eos.helpers import VIP, backend, config, item

DRAIN = {"actuator": "eos", "bgp_asn": 65000, "neighbors": ["SERVERS"]}


def wait_for(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


@contextmanager
def running(sw: EapiSwitch, **eos: Any) -> Iterator[tuple[Agent, EosControl]]:
    names = {"s1": "10.2.1.2", "s2": "10.2.2.2"}
    cfg = config(sw, reconcile_interval=0.2, drain=DRAIN, nexthops=names, **eos)
    agent, dp, actuator = build_eos(cfg, backend(sw, clock=time.monotonic, **eos))
    control = EosControl(agent, dp, cfg.nexthop_addresses, actuator)
    t = threading.Thread(target=agent.run, daemon=True)
    t.start()
    try:
        yield agent, control
    finally:
        agent.stop()
        t.join(5)
        agent.close()


def _fabric(sw: EapiSwitch) -> None:
    node = pyeapi.client.connect(**sw.connect_args(), return_node=True)
    node.config(["router bgp 65000", "neighbor SERVERS peer group", "exit"])
    for i, addr in enumerate(("10.2.1.2", "10.2.2.2")):
        sw.state.static.add_bgp_path(f"{VIP}/32", addr, f"Ethernet{i + 1}", peer=addr,
                                     peer_group="SERVERS")  # fmt: skip


def test_mirror_batches_become_pins_through_the_loop(eapi_switch: EapiSwitch) -> None:
    sw = eapi_switch
    with running(sw, rate_limit=500) as (agent, control):
        batcher = MicroBatcher(agent, max_items=64, max_delay=0.002)
        for i in range(300):  # burst 200 at 500/s: the rest flushes ~0.2 s later
            batcher.add(PinItem(*item(i, "10.2.1.2" if i % 2 else "10.2.2.2")), time.monotonic())
        batcher.flush()
        wait_for(lambda: sw.state.flows.used() == 300)
        st = control.status()
        assert st.mode == "eos-directflow" and st.pinned == 300 and st.healthy
        nhs = {n.name: n.pinned for n in control.list_nexthops()}
        assert nhs == {"s1": 150, "s2": 150}
        page = control.list_flows(FlowFilter(nexthop="s1"), 1000, "")
        assert len(page.flows) == 150 and {f.nexthop for f in page.flows} == {"s1"}
        # periodic reconcile: a flow removed behind the agent's back comes back
        name = next(e.name for e in sw.state.flows.entries())
        pyeapi.client.connect(**sw.connect_args(), return_node=True).config(
            ["directflow", f"no flow {name}"]
        )
        wait_for(lambda: sw.state.flow(name) is not None)
        assert control.purge_flows(FlowFilter(nexthop="s2")) == 150
        assert sw.state.flows.used() == 150


def test_drain_s1_works_against_eos_as_against_frr(eapi_switch: EapiSwitch) -> None:
    sw = eapi_switch
    _fabric(sw)
    with running(sw) as (agent, control):
        agent.pin([PinItem(*item(i, "10.2.1.2")) for i in range(5)])
        wait_for(lambda: sw.state.flows.used() == 5)
        info = control.drain("s1", deadline_s=0.5)
        assert (info.state, info.pinned) == ("draining", 5)
        assert "ip prefix-list DRAIN4 seq 10 permit 10.2.1.2/32" in sw.state.running_config()
        assert isinstance(control.actuator, EosDrain)
        prefs = {p["nextHop"]: p["localPreference"] for p in control.actuator.bgp_paths(VIP)}
        assert prefs == {"10.2.1.2": 1, "10.2.2.2": 100}  # show ip bgp VIP
        wait_for(lambda: control.drain_status("s1").pinned == 0)  # the deadline released them
        assert control.drain_status("s1").state == "drained" and sw.state.flows.used() == 0
        assert control.undrain("s1").state == "active"
        assert "DRAIN4" not in sw.state.running_config()
