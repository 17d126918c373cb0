"""Egress by query (profiles with ``egress: [query, …]`` and ``backend.eos.egress: query``):
ask the switch which member its hash picks for a flow, when one ingress mirror session
cannot say it.

For a batch of flows, at most two requests: first ``show ip route SRC`` (the interface toward
the client is the flow's ingress) and ``show ip route VIP`` (the members: ``vias[]{nexthopAddr,
interface}``) for the addresses not cached yet; then one ``show load-balance destination ip
ingress-interface I src-ipv4-address A dst-ipv4-address B ip-protocol 6 src-l4-port p
dst-l4-port q`` per flow → ``outputIntf`` → the via on that interface. Two vias on one
interface make the answer ambiguous: reported (``ambiguous``), never guessed. The caches are
cleared at every reconcile pass (and resync), so route changes are picked up.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from dfagent.backends.eos.session import EosCommandError, EosSession
from dfagent.core.pintable import Flow

MAX_CACHE = 65536


@dataclass
class EgressStats:
    queried: int = 0
    answered: int = 0
    ambiguous: int = 0  # two members behind the output interface
    no_route: int = 0  # no route to the client or the VIP, or no output interface
    requests: int = 0

    def to_json(self) -> dict[str, int]:
        return asdict(self)


def _kw(addr: str) -> str:
    return "ipv6" if ipaddress.ip_address(addr).version == 6 else "ip"


def _vias(doc: Mapping[str, Any]) -> list[dict[str, str]]:
    routes = doc.get("vrfs", {}).get("default", {}).get("routes", {}) if doc else {}
    for route in routes.values():
        return list(route.get("vias", []))
    return []


class EosEgressQuery:
    def __init__(self, session: EosSession) -> None:
        self.session = session
        self.ingress: dict[str, str | None] = {}  # client address → interface toward it
        self.members: dict[str, dict[str, list[str]]] = {}  # VIP → interface → next hops
        self.stats = EgressStats()

    def clear(self) -> None:
        self.ingress.clear()
        self.members.clear()

    def resolve(self, flows: Iterable[Flow]) -> dict[Flow, str | None]:
        """Each flow's next hop (None: no answer, counted). Raises EosError (unreachable)."""
        flows = list(dict.fromkeys(flows))
        self.stats.queried += len(flows)
        self._learn_routes(flows)
        asked: list[Flow] = []
        cmds: list[str] = []
        for f in flows:
            intf = self.ingress.get(f.src)
            if intf is None:
                continue
            v = 6 if ipaddress.ip_address(f.src).version == 6 else 4
            cmds.append(
                f"show load-balance destination {_kw(f.src)} ingress-interface {intf} "
                f"src-ipv{v}-address {f.src} dst-ipv{v}-address {f.dst} ip-protocol 6 "
                f"src-l4-port {f.sport} dst-l4-port {f.dport}"
            )
            asked.append(f)
        out: dict[Flow, str | None] = dict.fromkeys(flows)
        results = self._run(cmds) if cmds else []
        for f, res in zip(asked, results, strict=False):
            intf = res.get("outputIntf") if isinstance(res, dict) else None
            out[f] = self._member(f.dst, intf or "")
        for f, nh in out.items():
            if nh is None and f not in asked:
                self.stats.no_route += 1
        return out

    def _member(self, vip: str, intf: str) -> str | None:
        hops = self.members.get(vip, {}).get(intf, []) if intf else []
        if len(hops) == 1:
            self.stats.answered += 1
            return hops[0]
        if len(hops) > 1:
            self.stats.ambiguous += 1
        else:
            self.stats.no_route += 1
        return None

    def _learn_routes(self, flows: list[Flow]) -> None:
        if len(self.ingress) > MAX_CACHE:
            self.ingress.clear()
        srcs = [s for s in dict.fromkeys(f.src for f in flows) if s not in self.ingress]
        dsts = [d for d in dict.fromkeys(f.dst for f in flows) if d not in self.members]
        cmds = [f"show {_kw(a)} route {a}" for a in (*srcs, *dsts)]
        if not cmds:
            return
        results = self._run(cmds)
        for src, doc in zip(srcs, results[: len(srcs)], strict=False):
            vias = _vias(doc)
            self.ingress[src] = vias[0]["interface"] if vias else None
        for dst, doc in zip(dsts, results[len(srcs) :], strict=False):
            members: dict[str, list[str]] = {}
            for via in _vias(doc):
                members.setdefault(via.get("interface", ""), []).append(via["nexthopAddr"])
            self.members[dst] = members

    def _run(self, cmds: list[str]) -> list[Any]:
        self.stats.requests += 1
        try:
            return self.session.run(cmds)
        except EosCommandError as exc:  # one refused command: the others' answers count
            return [*exc.results, {}, *([{}] * (len(cmds) - len(exc.results) - 1))]
