"""An Arista EOS stand-in speaking eAPI as EOS does, for testing dfagent's EOS backend over
the real protocol with the unmodified pyeapi client (docs/eapi-switch.md).

Modules: `server` (HTTP/Unix transport, auth, faults), `rpc` (JSON-RPC runCmds), `modes`
(CLI session and config modes), `tokens` (words and EOS error texts), `directflow` (flow
table, TCAM capacity, timeouts, observers), `runconfig` (prefix-lists, route-maps, BGP,
`show running-config`), `show` (show renderers), `providers` (routing answers), `state`,
`switch` (the EapiSwitch facade), `clock`.
"""

from dfagent.lab.eapi.clock import FakeClock, SystemClock
from dfagent.lab.eapi.directflow import (
    DEFAULT_CAPACITY,
    STATUS_NOT_PROGRAMMED,
    STATUS_PROGRAMMED,
    STATUS_REJECTED,
    CounterSource,
    FlowConfig,
    FlowEntry,
    FlowObserver,
)
from dfagent.lab.eapi.providers import FiveTuple, Providers, StaticProviders
from dfagent.lab.eapi.server import Faults
from dfagent.lab.eapi.state import SwitchState, VersionInfo
from dfagent.lab.eapi.switch import EapiSwitch, make_self_signed_cert

__all__ = [
    "DEFAULT_CAPACITY",
    "STATUS_NOT_PROGRAMMED",
    "STATUS_PROGRAMMED",
    "STATUS_REJECTED",
    "CounterSource",
    "EapiSwitch",
    "FakeClock",
    "Faults",
    "FiveTuple",
    "FlowConfig",
    "FlowEntry",
    "FlowObserver",
    "Providers",
    "StaticProviders",
    "SwitchState",
    "SystemClock",
    "VersionInfo",
    "make_self_signed_cert",
]
