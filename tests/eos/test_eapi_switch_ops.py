"""Event handlers and mirror sessions on the eAPI test switch, over pyeapi."""

from __future__ import annotations

import pytest
from pyeapi.eapilib import CommandError

from dfagent.lab.eapi import EapiSwitch
from dfagent.lab.eapi.runconfig import section
from tests.eos.test_eapi_switch import node

HANDLERS = """\
event-handler dfagent-bgp
   trigger on-logging
      poll interval 1
      regex %BGP-5-ADJCHANGE
   action bash dfagent resync
   delay 0
   asynchronous
!
event-handler dfagent-intf-Ethernet3-1
   trigger on-intf Ethernet3/1 operstatus
   action bash dfagent resync
   delay 0
   asynchronous
"""


def test_event_handlers_pasted_as_printed_come_back_the_same(eapi_switch: EapiSwitch) -> None:
    n = node(eapi_switch)
    n.config(HANDLERS.splitlines())  # as an operator pastes it: indented, with `!`
    text = n.enable("show running-config")[0]["result"]["output"]
    assert section(text, "^event-handler") == HANDLERS
    h = eapi_switch.state.ops.handlers["dfagent-bgp"]
    assert (h.trigger, h.regex, h.action, h.asynchronous) == (
        "on-logging", "%BGP-5-ADJCHANGE", "dfagent resync", True,
    )  # fmt: skip
    n.config(["no event-handler dfagent-bgp"])
    assert list(eapi_switch.state.ops.handlers) == ["dfagent-intf-Ethernet3-1"]


def test_mirror_session_of_syns(eapi_switch: EapiSwitch) -> None:
    n = node(eapi_switch)
    n.config(
        [
            "ip access-list ACL-TCP-SYN",
            "permit tcp any any syn",
            "exit",
            "monitor session TCP-SYN source Et47 rx ip access-group ACL-TCP-SYN",
            "monitor session TCP-SYN destination tunnel mode gre source 5.5.5.5 "
            "destination 1.1.1.1",
        ]
    )
    m = eapi_switch.state.ops.monitors["TCP-SYN"]
    assert m.sources == {"Ethernet47": ("rx", "ACL-TCP-SYN")}
    assert str(m.gre_destination) == "1.1.1.1"
    text = n.enable("show running-config")[0]["result"]["output"]
    assert (
        "monitor session TCP-SYN source Ethernet47 rx ip access-group ACL-TCP-SYN\n"
        "monitor session TCP-SYN destination tunnel mode gre source 5.5.5.5 destination 1.1.1.1\n"
    ) in text
    n.config(["no monitor session TCP-SYN"])
    assert eapi_switch.state.ops.monitors == {}


@pytest.mark.parametrize(
    "cmds",
    [
        ["event-handler H", "trigger on-log"],
        ["event-handler H", "trigger on-intf Ethernet1 up"],
        ["event-handler H", "action python resync"],
        ["event-handler H", "action bash"],
        ["event-handler H", "delay soon"],
        ["event-handler H", "trigger on-logging", "poll interval 0"],
        ["event-handler H.x"],
        ["monitor session S source Et1 in"],
        ["monitor session S destination tunnel mode gre source 5.5.5.5"],
        ["monitor session S destination tunnel mode vxlan source 5.5.5.5 destination 1.1.1.1"],
        ["monitor session S source Et1 rx ip access-list ACL"],
    ],
)
def test_ops_typos_are_refused(eapi_switch: EapiSwitch, cmds: list[str]) -> None:
    with pytest.raises(CommandError) as err:
        node(eapi_switch).config(cmds)
    assert err.value.error_code == 1002
    assert f"of {len(cmds) + 2} '{cmds[-1]}' failed" in err.value.error_text
