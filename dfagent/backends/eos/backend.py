"""Pins on one EOS switch: the core's pin table applied through the switch's one session.

No loop of its own: the agent's loop calls :meth:`EosBackend.pin` (a micro-batch from the
mirror path), :meth:`EosBackend.reconcile` (at start and periodically) and
:meth:`EosBackend.flush` (when :attr:`schedule` asked for it). Everything the pin table wants
written goes through a backlog:

* written at once, many pins per ``runCmds`` request (``max_batch`` from the profile), as
  far as the rate limit allows; the rest waits and :attr:`schedule` is asked to call
  :meth:`flush` when tokens are there;
* when the switch cannot be reached the backlog stays (nothing is lost, nothing is retried
  in a tight loop: the session backs off) and is written when it answers again;
* an error on one command (eAPI stops there) names the pin: it is counted and retried by the
  table's backoff, its half-written flow removed, the pins after it resent.

Reconcile reads every entry on the switch in one request, adopts this agent's (by name
prefix), clears its leftovers (aged out, not for a VIP, unparsable), puts back pins the switch
lost while active (a reboot drops non-persistent flows), retries rejected ones, and counts
the others' entries to know how much room is left. It never writes a name without this
agent's prefix.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from dfagent.backends.eos.device import (
    NOT_PROGRAMMED,
    PROGRAMMED,
    REJECTED,
    DeviceFlow,
    parse_directflow_detail,
    parse_pbr_config,
    parse_traffic_policy_config,
)
from dfagent.backends.eos.egress import EosEgressQuery
from dfagent.backends.eos.names import flow_name, is_ours, parse_name
from dfagent.backends.eos.render import Item, PinRenderer
from dfagent.backends.eos.session import EosCommandError, EosError, EosSession
from dfagent.core.nexthops import IPNetwork, in_vips
from dfagent.core.pintable import INSTALLED, Changes, Flow, Pin, PinTable, Seen
from dfagent.core.ratelimit import TokenBucket
from dfagent.profiles import Profile

log = logging.getLogger("dfagent.eos")
NO_FLOW = Flow("0.0.0.0", "0.0.0.0", 0, 0)  # stands in where only the name matters (DirectFlow)


@dataclass
class EosStats:
    requests: int = 0  # runCmds requests that wrote pins
    installs: int = 0  # pins written
    removes: int = 0  # pins removed
    write_errors: int = 0  # commands the switch refused
    deferred: int = 0  # pins that waited for the rate limit or for the switch
    unknown_nexthop: int = 0  # a mirror session with no usable next hop
    not_vip: int = 0
    reconciles: int = 0
    reconcile_errors: int = 0
    last_error: str = ""
    by_kind: dict[str, int] = field(default_factory=dict)  # errors by EosError.kind

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class OwnFlow:
    """One of this agent's entries on the switch."""

    name: str
    flow: Flow | None  # None: the name is ours but no flow (a leftover to clean)
    nexthop: str
    packets: int | None
    status: str


class EosBackend:
    def __init__(
        self,
        session: EosSession,
        profile: Profile,
        prefix: str,
        renderer: PinRenderer,
        table: PinTable,
        vips: Sequence[IPNetwork] = (),
        rate_limit: float = 2000.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.session = session
        self.profile = profile
        self.prefix = prefix
        self.renderer = renderer
        self.table = table
        self.vips = tuple(vips)
        self.clock = clock
        self.bucket = TokenBucket(rate_limit, burst=max(profile.max_batch, rate_limit / 10))
        self.backlog = Changes()
        self.stats = EosStats()
        # asks the owner's loop to call flush() after this many seconds (None: nobody will)
        self.schedule: Callable[[float], None] | None = None
        self.on_written: list[Callable[[list[Pin]], None]] = []  # pins the switch took
        # asks the owner's loop to flush once the batches queued behind this one are in, so
        # under load many micro-batches share one request (None: flush at once)
        self.coalesce: Callable[[], None] | None = None
        self.egress: EosEgressQuery | None = None  # egress query: pins given without next hop

    @property
    def name(self) -> str:
        return self.session.ep.name

    # ── start ───────────────────────────────────────────────────────────────────
    def start(self) -> None:
        """Set the switch up for pins (DirectFlow enabled, the policy applied) and adopt what
        a previous run left; raises EosError when the switch cannot be used."""
        self.session.config(self.renderer.setup())
        self.reconcile(raise_errors=True)

    # ── the mirror path ─────────────────────────────────────────────────────────
    def pin(self, batch: Iterable[Sequence[Any]]) -> Changes:
        """Pin a micro-batch of ``(src, dst, sport, dport, nexthop)``."""
        now = self.clock()
        items: list[tuple[Flow, str]] = []
        batch = list(batch)
        asked = self._query([it for it in batch if not it[4]])
        for it in batch:
            src, dst, sport, dport, nh = it[0], it[1], it[2], it[3], it[4]
            if not nh:  # the egress query's answer
                nh = asked.get(Flow(str(src), str(dst), int(sport), int(dport))) or ""
            nexthop = self.usable_nexthop(str(nh), str(dst))
            if nexthop is None:
                self.stats.unknown_nexthop += 1
                continue
            if not self.for_vip(str(dst)):
                self.stats.not_vip += 1
                continue
            items.append((Flow(str(src), str(dst), int(sport), int(dport)), nexthop))
        ch = self.table.want(now, items)
        self.backlog.extend(ch)
        if self.coalesce is not None:
            self.coalesce()
        else:
            self.flush()
        return ch

    def _query(self, items: list[Sequence[Any]]) -> dict[Flow, str | None]:
        if not items or self.egress is None:
            return {}
        flows = [Flow(str(i[0]), str(i[1]), int(i[2]), int(i[3])) for i in items]
        try:
            return self.egress.resolve(f for f in flows if self.for_vip(f.dst))
        except EosError as exc:
            self._error(exc)
            return {}

    def usable_nexthop(self, nh: str, dst: str) -> str | None:
        """The next hop as the switch takes it: an address of the flow's family (``%IF``
        dropped), or ``%IF`` alone where the pin method can output to an interface."""
        addr, _, ifname = nh.partition("%")
        if addr:
            try:
                ip = ipaddress.ip_address(addr)
                fam = ipaddress.ip_address(dst).version
            except ValueError:
                return None
            if ip.version != fam or ip.is_link_local:
                return None
            return str(ip)
        if ifname and self.profile.pin_method == "directflow":
            return f"%{ifname}"
        return None

    def for_vip(self, dst: str) -> bool:
        return in_vips(dst, self.vips)

    # ── writing ─────────────────────────────────────────────────────────────────
    def flush(self) -> None:
        """Write what the backlog holds, as far as the rate limit and the switch allow."""
        if not self.backlog:
            return
        if not self.session.up:
            self._later(self.session.down_until - self.clock())
            return
        now = self.clock()
        live = [p for p in self.backlog.install if self.table.pins.get(p.flow) is p]
        n = self.bucket.take(now, len(live))
        installs, rest = live[:n], live[n:]
        removes = self.backlog.remove
        self.backlog = Changes(install=rest)
        if rest:
            self.stats.deferred += len(rest)
            self._later(self.bucket.wait(self.clock(), min(len(rest), self.profile.max_batch)))
        if installs or removes:
            self.write(removes, installs)

    def _later(self, delay: float) -> None:
        if self.schedule is not None:
            self.schedule(max(0.001, delay))

    def write(self, removes: Sequence[Pin], installs: Sequence[Pin]) -> None:
        """Write in requests of ``max_batch`` pins; what the switch could not take goes back
        to the backlog (unreachable) or to the table's retry (refused)."""
        step = self.profile.max_batch
        todo_r = [self._item(p, remove=True) for p in removes]
        todo_i = [self._item(p) for p in installs]
        pins = {id(it): p for it, p in zip(todo_r + todo_i, [*removes, *installs], strict=True)}
        while todo_r or todo_i:
            chunk_r, todo_r = todo_r[:step], todo_r[step:]
            chunk_i, todo_i = todo_i[: step - len(chunk_r)], todo_i[step - len(chunk_r) :]
            try:
                again_r, again_i = self._write_chunk(chunk_r, chunk_i, pins)
            except EosError as exc:  # the switch did not answer: keep it all for later
                self._error(exc)
                back_r = [pins[id(it)] for it in chunk_r + todo_r]
                back_i = [pins[id(it)] for it in chunk_i + todo_i]
                self.backlog = Changes(back_i + self.backlog.install, back_r + self.backlog.remove)
                self.stats.deferred += len(back_i)
                self._later(self.session.down_until - self.clock())
                return
            todo_r = again_r + todo_r
            todo_i = again_i + todo_i

    def _item(self, p: Pin, remove: bool = False) -> Item:
        name = flow_name(self.prefix, p.flow)
        return Item(name, p.flow, None if remove else p.nexthop)

    def _write_chunk(
        self, rem: list[Item], ins: list[Item], pins: dict[int, Pin]
    ) -> tuple[list[Item], list[Item]]:
        """One request; returns the items to send again (after a refused command)."""
        batch = self.renderer.batch(rem, ins)
        self.stats.requests += 1
        try:
            self.session.config(batch.cmds)
        except EosCommandError as exc:
            bad = batch.item_at(exc.index)
            self._error(exc)
            if bad is None:
                raise  # a command of the batch's frame: nothing pin-specific to retry
            done = batch.items[: batch.items.index(bad)]
            after = batch.items[batch.items.index(bad) + 1 :]
            self._written(done, pins)
            self.stats.write_errors += 1
            log.warning("eos-pin-failed switch=%s name=%s error=%s", self.name, bad.name, exc)
            again_r = [it for it in after if it.nexthop is None]
            again_i = [it for it in after if it.nexthop is not None]
            if bad.nexthop is not None:  # its half-written entry goes; the table retries it
                self.table.failed([pins[id(bad)]], self.clock())
                cleanup = Item(bad.name, bad.flow, None)
                pins[id(cleanup)] = pins[id(bad)]
                again_r.insert(0, cleanup)
            return again_r, again_i
        self._written(batch.items, pins)
        return [], []

    def _written(self, items: Sequence[Item], pins: dict[int, Pin]) -> None:
        installed = [pins[id(it)] for it in items if it.nexthop is not None]
        self.stats.installs += len(installed)
        self.stats.removes += len(items) - len(installed)
        self.table.applied(installed)
        for cb in self.on_written:
            cb(installed)

    def _error(self, exc: EosError) -> None:
        self.stats.by_kind[exc.kind] = self.stats.by_kind.get(exc.kind, 0) + 1
        self.stats.last_error = str(exc)
        if exc.kind != "backoff":
            log.warning("eapi-failed switch=%s kind=%s error=%s", self.name, exc.kind, exc)

    # ── looking at the switch ───────────────────────────────────────────────────
    def read(self) -> list[DeviceFlow]:
        """Every pin-like entry on the switch (this agent's and the others')."""
        method = self.profile.pin_method
        if method == "directflow":
            (doc,) = self.session.run(["show directflow detail"])
            return parse_directflow_detail(doc)
        (out,) = self.session.run(["show running-config"], fmt="text")
        text = out.get("output", "") if isinstance(out, dict) else str(out)
        policy = getattr(self.renderer, "policy", "")
        if method == "pbr":
            return parse_pbr_config(text, policy)
        return parse_traffic_policy_config(text, policy)

    def own_flows(self, device: Iterable[DeviceFlow] | None = None) -> list[OwnFlow]:
        out = []
        for df in self.read() if device is None else device:
            if is_ours(self.prefix, df.name):
                flow = parse_name(self.prefix, df.name)
                out.append(OwnFlow(df.name, flow, df.nexthop, df.packets, df.status))
        return out

    def reconcile(self, raise_errors: bool = False) -> Changes:
        """Compare the switch with the table and write the difference (see module doc)."""
        self.stats.reconciles += 1
        if self.egress is not None:
            self.egress.clear()  # route vias and client routes are re-read after each pass
        if not self.session.up and not raise_errors:
            return Changes()
        try:
            device = self.read()
        except EosError as exc:
            self.stats.reconcile_errors += 1
            self._error(exc)
            if raise_errors:
                raise
            return Changes()
        now = self.clock()
        ours: dict[Flow, Seen] = {}
        foreign = 0
        stale: list[Item] = []
        for df in device:
            if not is_ours(self.prefix, df.name):
                foreign += df.status == PROGRAMMED
                continue
            flow = parse_name(self.prefix, df.name)
            if flow is None or not self.for_vip(flow.dst):
                self.table.stats.stale += 1
                if flow is not None or self.profile.pin_method == "directflow":
                    stale.append(Item(df.name, flow or NO_FLOW))
                continue
            pin = self.table.pins.get(flow)
            nexthop = df.nexthop or (pin.nexthop if pin else "")
            packets = df.packets if self.profile.counters else None
            ours[flow] = Seen(
                nexthop,
                packets,
                programmed=df.status != REJECTED,
                expired=df.status == NOT_PROGRAMMED,
            )
        ch = self.table.observe(now, ours, foreign)
        if self.profile.ageing == "agent":
            ch.extend(self.table.age(now))
        if stale:
            try:
                self.remove_items(stale)
            except EosError as exc:
                self._error(exc)
        self.backlog.extend(ch)
        self.flush()
        return ch

    def remove_items(self, items: Sequence[Item]) -> None:
        """Remove entries by name (leftovers whose name renders from no flow of ours)."""
        step = self.profile.max_batch
        for i in range(0, len(items), step):
            chunk = items[i : i + step]
            self.session.config(self.renderer.batch(chunk, []).cmds)
            self.stats.requests += 1
            self.stats.removes += len(chunk)

    # ── operator tools ──────────────────────────────────────────────────────────
    def unpin(self, flows: Iterable[Flow]) -> int:
        """Remove these flows' pins from the switch now (and from the table)."""
        flows = list(flows)
        gone = [p for f in flows if (p := self.table.pins.get(f)) is not None]
        self.table.forget(flows)
        known = {p.flow for p in gone}
        extra = [Pin(f, "", 0.0, 0.0, INSTALLED) for f in flows if f not in known]
        self.write([*gone, *extra], [])
        return len(flows)

    def cleanup(self) -> int:
        """Remove every entry of this agent from the switch; returns how many."""
        items = [Item(o.name, o.flow or NO_FLOW) for o in self.own_flows()]
        self.remove_items(items)
        self.table.pins.clear()
        self.backlog = Changes()
        return len(items)
