"""Drain on EOS through pyeapi against the test switch: the drained server's path keeps its
session but loses the ECMP set (local-preference 1, `show ip bgp VIP`); undrain puts it
back and leaves the switch's configuration as it was."""

from __future__ import annotations

import pyeapi

from dfagent.backends.eos.drain import EosDrain
from dfagent.backends.eos.drainconf import DrainSpec
from dfagent.lab.eapi import EapiSwitch
from tests.eos.helpers import VIP, backend

SERVERS = {"s1": "10.2.1.2", "s2": "10.2.2.2", "s3": "10.2.3.2"}


def _fabric(sw: EapiSwitch) -> None:
    node = pyeapi.client.connect(**sw.connect_args(), return_node=True)
    members = [f"neighbor {a} peer group SERVERS" for a in SERVERS.values()]
    node.config(["router bgp 65000", "neighbor SERVERS peer group", *members, "exit"])
    for i, addr in enumerate(SERVERS.values()):
        sw.state.static.add_bgp_path(f"{VIP}/32", addr, f"Ethernet{i + 1}", peer=addr,
                                     peer_group="SERVERS")  # fmt: skip


def _ecmp(d: EosDrain) -> dict[str, tuple[bool, int]]:
    return {p["nextHop"]: (bool(p["routeType"]["ecmp"] or p["routeType"]["active"]),
                           p["localPreference"]) for p in d.bgp_paths(VIP)}  # fmt: skip


def test_drain_and_undrain_change_the_ecmp_set_on_the_switch(eapi_switch: EapiSwitch) -> None:
    sw = eapi_switch
    _fabric(sw)
    before = sw.state.running_config()
    d = EosDrain(backend(sw).session, DrainSpec(65000, ("SERVERS",)))
    assert set(_ecmp(d).values()) == {(True, 100)}
    d.drain(["10.2.1.2"])
    assert d.drained() == {"10.2.1.2"}
    assert _ecmp(d) == {"10.2.1.2": (False, 1), "10.2.2.2": (True, 100), "10.2.3.2": (True, 100)}
    d.drain(["10.2.1.2", "10.2.3.2%Ethernet3"])  # again, plus another: idempotent
    assert d.drained() == {"10.2.1.2", "10.2.3.2"}
    assert _ecmp(d)["10.2.3.2"] == (False, 1) and _ecmp(d)["10.2.2.2"] == (True, 100)
    d.undrain(["10.2.1.2"])
    assert _ecmp(d)["10.2.1.2"] == (True, 100) and d.drained() == {"10.2.3.2"}
    d.undrain(["10.2.3.2", "10.2.2.2"])  # one not drained: nothing to do for it
    assert set(_ecmp(d).values()) == {(True, 100)} and d.drained() == set()
    assert sw.state.running_config() == before  # nothing left behind


def test_the_agents_drain_actuator_comes_from_the_config(eapi_switch: EapiSwitch) -> None:
    from dfagent.agent.eos import drain_actuator
    from tests.eos.helpers import config

    sw = eapi_switch
    _fabric(sw)
    cfg = config(sw, drain={"actuator": "eos", "bgp_asn": 65000, "neighbors": ["SERVERS"]})
    b = backend(sw)
    act = drain_actuator(cfg, b.session)
    assert act is not None
    act.drain(["10.2.2.2"])
    assert "ip prefix-list DRAIN4 seq 10 permit 10.2.2.2/32" in sw.state.running_config()
    act.undrain(["10.2.2.2"])
    assert act.drained() == set()
