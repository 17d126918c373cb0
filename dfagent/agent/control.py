"""The agent's control surface (:class:`dfagent.api.control.AgentControl`) on a Linux router.

Called from the gRPC server's worker threads: every read of the agent's state and every
change (drain, purge, resync) is handed to the agent's loop with :meth:`Agent.call`; only the
conntrack listing (a read of the kernel, not of the agent) runs in the caller's thread.

Next hops are named by the config's ``nexthops`` (``s1: 10.2.1.2``); a name may stand for
several next-hop records (v4 and v6 of one server): records whose gateway is one of the
name's addresses, and — for link-local IPv6 next hops, which carry no global address — the
records of the same family on the interface the kernel routes that address out of.
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import os
import re
import subprocess
import time
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass

from dfagent import __version__
from dfagent.agent.agent import Agent
from dfagent.agent.control_base import ControlBase, flow_matches
from dfagent.api.control import InvalidArgument
from dfagent.backends.linux.datapath import LinuxDatapath
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
from dfagent.core.nexthops import NextHop
from dfagent.core.pinning import NhRecord
from dfagent.core.ports import DrainActuator

_CT = re.compile(
    r"^(?P<proto>\w+)\s+\d+\s+(?P<ttl>\d+)\s+(?:(?P<state>[A-Z_]+)\s+)?src=(?P<src>\S+) "
    r"dst=(?P<dst>\S+) sport=(?P<sport>\d+) dport=(?P<dport>\d+).*?\bmark=(?P<mark>\d+)"
)
FRESH_COUNT = 1.0  # drain_status asks for a new count when the last is older (seconds)


@dataclass
class Drain:
    addresses: tuple[str, ...]
    deadline_at: float | None
    started: float  # agent clock: counts begun before it say nothing about the drain


class LinuxControl(ControlBase):
    def __init__(
        self,
        agent: Agent,
        dp: LinuxDatapath,
        names: Mapping[str, Sequence[str]],
        actuator: DrainActuator | None = None,
        config_file: str = "",
    ) -> None:
        self.dp = dp
        self._last_count = 0.0
        self._ifname_cache: dict[str, str | None] = {}  # routes change: cleared every pass
        super().__init__(agent, names, actuator, config_file)
        self.drains: dict[str, Drain] = {}  # loop thread only

    # ── names ───────────────────────────────────────────────────────────────────
    def _records(self, addresses: Sequence[str]) -> list[NhRecord]:
        recs = self.dp.records
        out = [r for nh, r in recs.items() if nh.gateway in addresses]
        for addr in addresses:  # a global address whose next hop is link-local
            if any(nh.gateway == addr for nh in recs):
                continue
            ifname = self._route_ifname(addr)
            fam = ipaddress.ip_address(addr).version
            out += [
                r
                for nh, r in recs.items()
                if nh.ifname == ifname and nh.family == fam and r not in out
            ]
        return out

    def _route_ifname(self, addr: str) -> str | None:
        """The interface the kernel routes ``addr`` out of; one netlink lookup per address
        per pass (listing next hops asks for each record's name)."""
        if addr not in self._ifname_cache:
            self._ifname_cache[addr] = self.dp.nl.route_ifname(addr)
        return self._ifname_cache[addr]

    def _name_of(self, nh: NextHop) -> str:
        for name, addrs in self.names.items():
            if nh.gateway in addrs:
                return name
        for name, addrs in self.names.items():  # link-local: by the interface
            for a in addrs:
                if ipaddress.ip_address(a).version == nh.family and (
                    self._route_ifname(a) == nh.ifname
                ):
                    return name
        return str(nh)

    # ── reads ───────────────────────────────────────────────────────────────────
    def status(self) -> AgentStatus:
        def read() -> AgentStatus:
            by_state = dict.fromkeys(NEXTHOP_STATES, 0)
            pinned: int | None = 0
            for r in self.dp.records.values():
                by_state[self._state(r)] += 1
                pinned = None if pinned is None or r.pinned is None else pinned + r.pinned
            problems = tuple(self.dp.check())
            return AgentStatus(
                version=__version__,
                mode=self.dp.cfg.mode,
                pid=os.getpid(),
                started_at=self.agent.started_at,
                vips=tuple(str(v) for v in self.dp.cfg.vips),
                nexthops=by_state,
                pinned=pinned,
                repairs=self.dp.repairs,
                config_file=self.config_file,
                healthy=not problems,
                problems=problems,
            )

        return self.agent.call(read)

    @staticmethod
    def _state(r: NhRecord) -> str:
        """Out of the ECMP set with connections still pinned: draining; none left: drained."""
        if r.state == "drained" and (r.pinned is None or r.pinned > 0):
            return "draining"
        return r.state

    def list_nexthops(self) -> list[NexthopInfo]:
        return self.agent.call(self._nexthops)

    def _nexthops(self) -> list[NexthopInfo]:
        """On the loop."""
        out = []
        for nh, r in sorted(self.dp.records.items(), key=lambda kv: kv[1].mark):
            out.append(
                NexthopInfo(
                    name=self._name_of(nh),
                    address=nh.gateway,
                    ifname=nh.ifname,
                    family=nh.family,
                    state=self._state(r),
                    pinned=r.pinned,
                    mark=self.dp.space.mark(r.mark),
                    table=r.mark,
                )
            )
        return out

    def list_flows(self, filter: FlowFilter, limit: int, page_token: str) -> FlowPage:
        try:
            start = int(page_token or 0)
        except ValueError:
            raise InvalidArgument(f"bad page token {page_token!r}") from None
        if limit <= 0:
            raise InvalidArgument("limit must be more than 0")
        marks, names = self._marks_for(filter)
        # read no further than this page and one flow more (is there a next page?): at a
        # million pinned connections a whole listing costs seconds and hundreds of MB
        with contextlib.closing(self._conntrack_flows(marks, names)) as listing:
            matching = (f for f in listing if flow_matches(f, filter))
            flows = list(itertools.islice(matching, start + limit + 1))
        page = flows[start : start + limit]
        nxt = str(start + limit) if start + limit < len(flows) else ""
        return FlowPage(tuple(page), nxt)

    def _marks_for(self, filter: FlowFilter) -> tuple[list[int] | None, dict[int, str]]:
        def read() -> tuple[list[int] | None, dict[int, str]]:
            names = {
                self.dp.space.mark(r.mark): self._name_of(nh) for nh, r in self.dp.records.items()
            }
            if filter.nexthop is None:
                return None, names
            _, addrs = self._resolve(filter.nexthop)
            return [self.dp.space.mark(r.mark) for r in self._records(addrs)], names

        return self.agent.call(read)

    def _conntrack_flows(
        self, marks: list[int] | None, names: dict[int, str]
    ) -> Generator[FlowInfo, None, None]:
        """Pinned connections as conntrack lists them, read as it prints them; closing the
        generator stops the listing."""
        space = self.dp.space
        wanted = marks if marks is not None else [space.flag]
        for mark in wanted:
            mask = space.mask if marks is not None else space.flag
            for fam in ("ipv4", "ipv6"):
                argv = ["conntrack", "-L", "-f", fam, "-p", "tcp", "-m", f"{mark:#x}/{mask:#x}"]
                proc = subprocess.Popen(
                    argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
                )
                try:
                    assert proc.stdout is not None
                    for line in proc.stdout:
                        m = _CT.match(line)
                        if not m:
                            continue
                        field = int(m["mark"]) & space.mask
                        yield FlowInfo(
                            src=m["src"],
                            dst=m["dst"],
                            sport=int(m["sport"]),
                            dport=int(m["dport"]),
                            proto=m["proto"],
                            nexthop=names.get(field, f"{field:#010x}"),
                            state=m["state"],
                        )
                finally:
                    if proc.poll() is None:
                        proc.kill()
                    proc.wait(60)
                    if proc.stdout is not None:
                        proc.stdout.close()

    # ── changes ─────────────────────────────────────────────────────────────────
    def purge_flows(self, filter: FlowFilter) -> int:
        """Delete the matching connections' conntrack entries: their next packet is routed
        (and, in kernel mode, recorded) by ECMP as it is now."""
        marks, _ = self._marks_for(filter)
        return self._purge(marks, filter)

    def _purge(self, marks: list[int] | None, filter: FlowFilter) -> int:
        space = self.dp.space
        total = 0
        for mark in marks if marks is not None else [space.flag]:
            mask = space.mask if marks is not None else space.flag
            argv = ["conntrack", "-D", "-p", "tcp", "-m", f"{mark:#x}/{mask:#x}"]
            for opt, val in (("-s", filter.src), ("-d", filter.dst or filter.vip)):
                if val:
                    argv += [opt, val]
            for opt, port in (("--sport", filter.sport), ("--dport", filter.dport)):
                if port is not None:
                    argv += [opt, str(port)]
            for fam in ("ipv4", "ipv6"):
                proc = subprocess.run(
                    [*argv, "-f", fam], capture_output=True, text=True, timeout=60, check=False
                )
                m = re.search(r"(\d+) flow entries have been deleted", proc.stderr)
                total += int(m.group(1)) if m else 0
        return total

    def _drain_started(self, name: str, addrs: tuple[str, ...], deadline: float | None) -> None:
        self.drains[name] = Drain(addrs, deadline, self.agent.clock())
        self.agent.request_count()

    def drain_status(self, nexthop: str) -> DrainInfo:
        def do() -> DrainInfo:
            name, addrs = self._resolve(nexthop)
            if time.monotonic() - self._last_count > FRESH_COUNT:
                self._last_count = time.monotonic()
                self.agent.request_count()
            return self._drain_info(name, addrs)

        return self.agent.call(do)

    def _drain_info(self, name: str, addrs: Sequence[str]) -> DrainInfo:
        recs = self._records(addrs)
        d = self.drains.get(name)
        if not recs:
            return DrainInfo(name, "gone", 0, d.deadline_at if d else None)
        pinned: int | None = 0
        for r in recs:
            pinned = None if pinned is None or r.pinned is None else pinned + r.pinned
        if d is not None and self.agent.last_count_at < d.started:
            pinned = None  # not counted since the drain began: unknown, not zero
        states = {self._state(r) for r in recs}
        state = next(s for s in NEXTHOP_STATES if s in states)  # the first in this order
        if d is not None and state == "active":
            # asked, the routing daemon has not withdrawn it yet: new connections still
            # reach it, so no figure counted so far can say it is empty
            state, pinned = "draining", None
        elif d is not None and state == "drained" and pinned is None:
            state = "draining"
        return DrainInfo(name, state, pinned, d.deadline_at if d else None)

    # ── on the loop, after every pass ───────────────────────────────────────────
    def _after_pass(self, agent: Agent) -> None:
        self._ifname_cache.clear()
        agent.metrics.set_nexthops(self._nexthops())  # pinned flows and state per next hop
        for ev in agent.last_events:
            self.bus.publish(
                Event(time.time(), f"nexthop-{ev.kind}", self._name_of(ev.nexthop), str(ev.nexthop))
            )
        now = time.time()
        for name, d in list(self.drains.items()):
            if d.deadline_at is None or now < d.deadline_at:
                continue
            recs = self._records(d.addresses)
            left = sum(r.pinned or 0 for r in recs)
            if left:  # past the deadline: release what is left to ECMP
                marks = [self.dp.space.mark(r.mark) for r in recs]
                n = self._purge(marks, FlowFilter())
                self.bus.publish(Event(now, "drain-deadline", name, f"released {n} pins"))
            d.deadline_at = None
