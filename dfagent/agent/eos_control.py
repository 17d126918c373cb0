"""The agent's control surface (:class:`dfagent.api.control.AgentControl`) with the EOS
backend: the same commands as on Linux (`dfagent status|nexthops|flows|drain|undrain|
resync`), answered from the pin table and the switch instead of conntrack.

Every read and change runs on the agent's loop (:meth:`Agent.call`). A drain asks the drain
actuator (the switch's BGP policy) and then follows the pins left toward that next hop:
*draining* while any is left, *drained* when none is; past its deadline the rest are
unpinned (their connections follow ECMP as it is now).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from dfagent import __version__
from dfagent.agent.agent import Agent
from dfagent.agent.control_base import ControlBase, flow_matches
from dfagent.api.control import InvalidArgument
from dfagent.backends.eos.datapath import EosDatapath
from dfagent.core.model import (
    NEXTHOP_STATES,
    AgentStatus,
    DrainInfo,
    Event,
    FlowFilter,
    FlowInfo,
    FlowPage,
    NexthopInfo,
)
from dfagent.core.pintable import Flow, Pin
from dfagent.core.ports import DrainActuator


@dataclass
class _Drain:
    addresses: tuple[str, ...]
    deadline_at: float | None


class EosControl(ControlBase):
    no_actuator = (
        "no drain actuator for the EOS backend (drain.actuator: eos, with bgp_asn and neighbors)"
    )

    def __init__(
        self,
        agent: Agent,
        dp: EosDatapath,
        names: Mapping[str, Sequence[str]],
        actuator: DrainActuator | None = None,
        config_file: str = "",
    ) -> None:
        self.dp = dp
        self.backend = dp.backend
        names = {n: tuple(a.partition("%")[0] for a in v) for n, v in names.items()}
        super().__init__(agent, names, actuator, config_file)
        self.drains: dict[str, _Drain] = {}  # loop thread only

    # ── names ───────────────────────────────────────────────────────────────────
    def _name_of(self, addr: str) -> str:
        for name, addrs in self.names.items():
            if addr in addrs:
                return name
        return addr

    def _pins_to(self, addrs: Sequence[str]) -> list[Pin]:
        return [p for p in self.backend.table.pins.values() if p.nexthop in addrs]

    # ── reads ───────────────────────────────────────────────────────────────────
    def status(self) -> AgentStatus:
        def read() -> AgentStatus:
            by_state = dict.fromkeys(NEXTHOP_STATES, 0)
            for r in self.dp.records.values():
                by_state[self._state(r.state, r.pinned)] += 1
            problems = []
            if not self.backend.session.up:
                problems.append(f"switch unreachable: {self.backend.session.last_error}")
            if self.backend.backlog.install:
                problems.append(f"{len(self.backend.backlog.install)} pins waiting to be written")
            return AgentStatus(
                version=__version__,
                mode=f"eos-{self.backend.profile.pin_method}",
                pid=os.getpid(),
                started_at=self.agent.started_at,
                vips=tuple(str(v) for v in self.backend.vips),
                nexthops=by_state,
                pinned=self.backend.table.held(),
                repairs=0,
                config_file=self.config_file,
                healthy=not problems,
                problems=tuple(problems),
            )

        return self.agent.call(read)

    @staticmethod
    def _state(state: str, pinned: int | None) -> str:
        if state == "drained" and (pinned is None or pinned > 0):
            return "draining"
        return state

    def list_nexthops(self) -> list[NexthopInfo]:
        def read() -> list[NexthopInfo]:
            return [
                NexthopInfo(
                    name=self._name_of(nh.gateway),
                    address=nh.gateway,
                    ifname=nh.ifname,
                    family=nh.family,
                    state=self._state(r.state, r.pinned),
                    pinned=r.pinned,
                    mark=0,
                    table=0,
                )
                for nh, r in sorted(self.dp.records.items(), key=lambda kv: kv[1].mark)
            ]

        return self.agent.call(read)

    def list_flows(self, filter: FlowFilter, limit: int, page_token: str) -> FlowPage:
        try:
            start = int(page_token or 0)
        except ValueError:
            raise InvalidArgument(f"bad page token {page_token!r}") from None
        if limit <= 0:
            raise InvalidArgument("limit must be more than 0")
        flows = self.agent.call(lambda: self._flows(filter))
        page = flows[start : start + limit]
        nxt = str(start + limit) if start + limit < len(flows) else ""
        return FlowPage(tuple(page), nxt)

    def _flows(self, flt: FlowFilter) -> list[FlowInfo]:
        addrs = self._resolve(flt.nexthop)[1] if flt.nexthop else None
        now = self.backend.clock()
        out = []
        for p in sorted(self.backend.table.pins.values(), key=lambda p: p.created):
            if addrs is not None and p.nexthop not in addrs:
                continue
            f = FlowInfo(p.flow.src, p.flow.dst, p.flow.sport, p.flow.dport, "tcp",
                         self._name_of(p.nexthop), p.state, round(now - p.created, 1))  # fmt: skip
            if flow_matches(f, flt):
                out.append(f)
        return out

    # ── changes ─────────────────────────────────────────────────────────────────
    def purge_flows(self, filter: FlowFilter) -> int:
        def do() -> int:
            flows = self._flows(filter)
            return self.backend.unpin(Flow(f.src, f.dst, f.sport, f.dport) for f in flows)

        return self.agent.call(do)

    def _drain_started(self, name: str, addrs: tuple[str, ...], deadline: float | None) -> None:
        self.drains[name] = _Drain(addrs, deadline)
        self.dp.drained_now |= set(addrs)

    def _drain_ended(self, name: str, addrs: tuple[str, ...]) -> None:
        self.drains.pop(name, None)
        self.dp.drained_now -= set(addrs)

    def drain_status(self, nexthop: str) -> DrainInfo:
        return self.agent.call(lambda: self._drain_info(*self._resolve(nexthop)))

    def _drain_info(self, name: str, addrs: Sequence[str]) -> DrainInfo:
        d = self.drains.get(name)
        pinned = len(self._pins_to(addrs))
        drained = d is not None or any(a in self.dp.drained_now for a in addrs)
        state = ("draining" if pinned else "drained") if drained else "active"
        return DrainInfo(name, state, pinned, d.deadline_at if d else None)

    # ── on the loop, after every pass ───────────────────────────────────────────
    def _after_pass(self, agent: Agent) -> None:
        for ev in agent.last_events:
            self.bus.publish(Event(time.time(), f"nexthop-{ev.kind}",
                                   self._name_of(ev.nexthop.gateway), str(ev.nexthop)))  # fmt: skip
        now = time.time()
        for name, d in self.drains.items():
            if d.deadline_at is None or now < d.deadline_at:
                continue
            left = self._pins_to(d.addresses)
            if left:  # past the deadline: release what is left to ECMP
                n = self.backend.unpin([p.flow for p in left])
                self.bus.publish(Event(now, "drain-deadline", name, f"released {n} pins"))
            d.deadline_at = None
