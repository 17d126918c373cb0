"""The eAPI test switch through the real pyeapi client: the basics the EOS backend relies on."""

from __future__ import annotations

import pyeapi
import pytest
from pyeapi.eapilib import CommandError

from dfagent.lab.eapi import STATUS_PROGRAMMED, EapiSwitch


def node(sw: EapiSwitch) -> pyeapi.client.Node:
    return pyeapi.client.connect(**sw.connect_args(), return_node=True)


def flow_cmds(name: str, src: str, sport: int, nexthop: str = "10.0.1.2") -> list[str]:
    return [
        f"flow {name}",
        "match ethertype ip",
        f"match source ip {src}",
        "match destination ip 192.0.2.10",
        "match ip protocol tcp",
        f"match source port {sport}",
        "match destination port 80",
        f"action output nexthop {nexthop}",
        "timeout idle 300",
        "no persistent",
    ]


def test_show_version_over_pyeapi(eapi_switch: EapiSwitch) -> None:
    n = node(eapi_switch)
    assert n.model == "7050"
    assert n.version == "4.21.3F"
    out = n.enable(["show hostname"])[0]["result"]
    assert out == {"hostname": "dfagent-sw1", "fqdn": "dfagent-sw1"}


def test_flow_programmed_and_shown(eapi_switch: EapiSwitch) -> None:
    n = node(eapi_switch)
    n.config(["directflow", "no shutdown", *flow_cmds("DFA-a", "198.51.100.7", 40000)])
    entry = eapi_switch.state.flow("DFA-a")
    assert entry is not None and entry.status == STATUS_PROGRAMMED
    flows = n.enable("show directflow flows")[0]["result"]["flows"]
    assert [f["name"] for f in flows] == ["DFA-a"]
    assert flows[0]["match"]["ipSrc"] == {"ip": "198.51.100.7", "mask": "255.255.255.255"}
    assert flows[0]["match"]["ipPortSrc"] == 40000
    assert flows[0]["idleTimeout"] == 300 and flows[0]["persistent"] is False


def test_invalid_input_stops_the_request(eapi_switch: EapiSwitch) -> None:
    n = node(eapi_switch)
    with pytest.raises(CommandError) as err:
        n.run_commands(["show hostname", "show bogus", "show version"])
    assert err.value.error_code == 1002
    assert "CLI command 3 of 4 'show bogus' failed: invalid command" in err.value.error_text
    data = err.value.output
    assert data[0] == {} and data[1]["hostname"] == "dfagent-sw1"
    assert data[2] == {"errors": ["Invalid input (at token 1: 'bogus')"]}
    assert len(data) == 3
