"""Graceful drain on an EOS switch over eAPI: the agent's drain actuator
(:class:`dfagent.core.ports.DrainActuator`) when ``drain.actuator: eos``.

The lines come from :mod:`dfagent.backends.eos.drainconf`; what is drained is read back from
the switch's running config before every change, so two agents draining different servers
on one switch, or an operator, do not overwrite each other's entries.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dfagent.backends.eos.drainconf import (
    DrainSpec,
    drain_lines,
    drained_from_config,
    nexthop_addresses,
    undrain_lines,
)
from dfagent.backends.eos.session import EosSession


class EosDrain:
    def __init__(self, session: EosSession, spec: DrainSpec) -> None:
        self.session = session
        self.spec = spec

    def current(self) -> dict[str, int]:
        (out,) = self.session.run(["show running-config"], fmt="text")
        text = out.get("output", "") if isinstance(out, dict) else str(out)
        return drained_from_config(self.spec, text)

    def drain(self, addresses: Sequence[str]) -> None:
        lines = drain_lines(self.spec, self.current(), nexthop_addresses(addresses))
        if lines:
            self.session.config(lines)

    def undrain(self, addresses: Sequence[str]) -> None:
        lines = undrain_lines(self.spec, self.current(), nexthop_addresses(addresses))
        if lines:
            self.session.config(lines)

    def drained(self) -> set[str]:
        return set(self.current())

    def bgp_paths(self, vip: str) -> list[dict[str, Any]]:
        """``show ip bgp VIP`` paths (nextHop, localPreference, routeType): to verify."""
        kw = "ipv6" if ":" in vip else "ip"
        (doc,) = self.session.run([f"show {kw} bgp {vip}"])
        out: list[dict[str, Any]] = []
        vrfs = doc.get("vrfs", {}) if isinstance(doc, dict) else {}
        for entry in vrfs.get("default", {}).get("bgpRouteEntries", {}).values():
            out += entry.get("bgpRoutePaths", [])
        return out
