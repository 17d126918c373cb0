"""An arista_ceos node's startup-config as the namespace runner reads it (dfagent/lab/ceos.py):
the runner's parts (addresses, routing, eAPI, users) and the switch's lines; every refusal
one line naming the file and the line."""

from __future__ import annotations

from pathlib import Path

import pytest

from dfagent.lab import ceos, eos_switch
from dfagent.lab.eapi import EapiSwitch
from dfagent.lab.eapi.tokens import CommandError
from dfagent.lab.topology import Node

REPO = Path(__file__).resolve().parents[2]
LAB_CONFIG = REPO / "labs" / "resilient-ecmp-eos" / "lb" / "startup-config.cfg"


def test_the_labs_startup_config() -> None:
    cfg = ceos.load(LAB_CONFIG)
    assert cfg.hostname == "lb"
    assert cfg.addresses["eth1"] == ["10.1.0.1/24", "fd00:1::1/64"]
    assert sorted(cfg.addresses) == ["eth1", "eth2", "eth3", "eth4", "eth5"]
    assert cfg.ipv4_routing and cfg.ipv6_routing
    assert (cfg.eapi.protocol, cfg.eapi.port, cfg.eapi.enabled) == ("http", 80, True)
    assert cfg.users == {"dfagent": "dfagent-lab"}
    text = "\n".join(cfg.switch_lines)
    assert "monitor session s1 source Ethernet2 tx" in text and "directflow" in text
    for runners in ("router bgp", "peer-filter", "interface", "management api", "username"):
        assert runners not in text


def test_the_switch_takes_the_switch_lines_as_its_running_config() -> None:
    sw = EapiSwitch(password="x")
    sw.configure(ceos.load(LAB_CONFIG).switch_lines)
    running = sw.state.running_config()
    assert sw.state.hostname == "lb" and sw.state.flows.enabled
    assert "monitor session s4 destination tunnel mode gre source 10.1.0.1 destination 1.1.1.1" in (
        running
    )
    assert sw.state.startup_config == sw.state.running_config(startup=True)
    with pytest.raises(CommandError, match="'monitor session x source Ethernet2 out'"):
        sw.configure(["monitor session x source Ethernet2 out"])


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("interface Loopback0\n   ip address 1.1.1.1/32\n", "only EthernetN interfaces"),
        ("interface Ethernet1\n   ip address 10.0.0.300/24\n", "not an A/len"),
        ("interface Ethernet1\n   switchport access vlan 2\n", "not modelled here"),
        ("management api gnmi\n", "only http-commands"),
        ("management api http-commands\n   protocol http port eighty\n", r"protocol P \[port N\]"),
        ("management api http-commands\n   vrf MGMT\n", "not modelled here"),
        ("username a privilege 15 secret sha512 $6$x\n", "plain text"),
        ("username a privilege 15 nopassword\n", "secret 0 PW"),
    ],
)
def test_what_the_runner_cannot_play_is_one_line(text: str, says: str) -> None:
    with pytest.raises(ceos.CeosConfigError, match=says) as err:
        ceos.parse(text, "sw.cfg")
    assert "\n" not in str(err.value) and str(err.value).startswith("sw.cfg: ")


def test_https_and_a_port() -> None:
    cfg = ceos.parse("management api http-commands\n   protocol https port 8443\n   no shutdown\n")
    assert (cfg.eapi.protocol, cfg.eapi.port, cfg.eapi.enabled) == ("https", 8443, True)
    assert ceos.parse("management api http-commands\n   protocol https\n").eapi.port == 443


def _node(tmp_path: Path, text: str) -> Node:
    cfg = tmp_path / "sw.cfg"
    cfg.write_text(text)
    return Node("sw", "arista_ceos", startup_config=cfg)


def test_the_runner_checks_a_startup_config_before_making_anything(tmp_path: Path) -> None:
    ok = LAB_CONFIG.read_text()
    assert eos_switch.check(_node(tmp_path, ok)).users == {"dfagent": "dfagent-lab"}
    for text, says in [
        (ok.replace("   protocol http\n", ""), "eAPI is off"),
        (ok.replace("username dfagent", "! username dfagent"), "no `username"),
        (ok + "monitor session m source Ethernet2 sideways\n", "'monitor session m source "),
    ]:
        with pytest.raises(ceos.CeosConfigError, match=says) as err:
            eos_switch.check(_node(tmp_path, text))
        assert "\n" not in str(err.value)
