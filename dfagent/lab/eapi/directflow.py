"""The DirectFlow table of the test switch: configured flows, what is in the "TCAM", timers.

A flow is *configured* (it is in the running config) and separately *programmed* (it holds a
TCAM entry, matches traffic, shows in `show directflow flows`). As on EOS, a flow whose
timeout expired or that did not fit stays configured with a status saying it is not
programmed (`show directflow detail`), until someone removes it with `no flow NAME`.

Programming happens when a flow is committed: when its `flow NAME` mode is left (another
command of a parent mode, `exit`, `end`, or the end of the eAPI request). Re-committing an
unchanged programmed flow changes nothing; a changed flow, or one not programmed, is
(re)programmed with fresh counters and timers.
"""

from __future__ import annotations

import ipaddress
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Protocol

from dfagent.lab.eapi.clock import Clock

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def within(net: IPNetwork, prefix: IPNetwork) -> bool:
    """``net`` is ``prefix`` or inside it (never across address families)."""
    if isinstance(net, ipaddress.IPv4Network) and isinstance(prefix, ipaddress.IPv4Network):
        return net.subnet_of(prefix)
    if isinstance(net, ipaddress.IPv6Network) and isinstance(prefix, ipaddress.IPv6Network):
        return net.subnet_of(prefix)
    return False


STATUS_PROGRAMMED = "Flow programmed"
STATUS_NOT_PROGRAMMED = "Flow not programmed"
STATUS_REJECTED = "Flow rejected due to insufficient resources"

ETH_IPV4 = 0x0800
ETH_IPV6 = 0x86DD
ETH_ARP = 0x0806

DEFAULT_CAPACITY = 1500  # L3 flows in the IFP TCAM of a 7050X (Trident2), field notes


@dataclass(frozen=True)
class FlowConfig:
    """One `flow NAME` block as configured (what `show running-config` prints)."""

    name: str
    ethertype: int | None = None
    src: IPNetwork | None = None
    dst: IPNetwork | None = None
    ip_proto: int | None = None
    sport: int | None = None
    dport: int | None = None
    in_interfaces: tuple[str, ...] = ()
    nexthop: IPAddress | None = None
    out_interfaces: tuple[str, ...] = ()
    drop: bool = False
    priority: int = 0
    idle_timeout: int = 0  # seconds, 0 = never
    hard_timeout: int = 0
    persistent: bool = True  # EOS default; `no persistent` keeps it out of startup-config

    def with_(self, **changes: Any) -> FlowConfig:  # fields, each of its own type
        return replace(self, **changes)

    def programmable(self) -> bool:
        """What the hardware agent would refuse: matches that contradict each other."""
        for net in (self.src, self.dst):
            if net is None:
                continue
            want = ETH_IPV4 if net.version == 4 else ETH_IPV6
            if self.ethertype != want:
                return False
        if (self.sport is not None or self.dport is not None) and self.ip_proto not in (6, 17):
            return False
        if self.ip_proto is not None and self.ethertype not in (ETH_IPV4, ETH_IPV6):
            return False
        return not (self.nexthop is not None and self.drop)


@dataclass
class FlowEntry:
    """A configured flow and its hardware state."""

    config: FlowConfig
    order: int  # configuration order: programming after `no shutdown` follows it
    status: str = STATUS_NOT_PROGRAMMED
    programmed_at: float | None = None
    last_match: float | None = None
    match_packets: int = 0
    match_bytes: int = 0

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def programmed(self) -> bool:
        return self.status == STATUS_PROGRAMMED


def _tell_removed(observer: FlowObserver, entry: FlowEntry, reason: str) -> None:
    observer.flow_removed(entry, reason)


def _tell_expired(observer: FlowObserver, entry: FlowEntry, reason: str) -> None:
    observer.flow_expired(entry, reason)


class FlowObserver:
    """Callbacks for a datapath that follows the table (a lab turns flows into nft rules).

    Called with the switch's state lock held, in the order things happen; an observer must
    not call back into the switch. Override what you need.
    """

    def flow_installed(self, entry: FlowEntry) -> None:
        """The flow got a TCAM entry: traffic matching it now follows its action."""

    def flow_removed(self, entry: FlowEntry, reason: str) -> None:
        """The flow lost its TCAM entry: reason is 'deleted' (`no flow`), 'replaced' (a
        changed definition follows at once), 'shutdown' (`directflow` / `shutdown`)."""

    def flow_expired(self, entry: FlowEntry, reason: str) -> None:
        """A timeout removed the flow from the TCAM: reason 'idle' or 'hard'. It stays
        configured, status 'Flow not programmed'."""

    def flows_done(self) -> None:
        """The calls since the last one are complete (an eAPI request, a timeout pass): a
        datapath may apply what it collected in one transaction."""


class CounterSource(Protocol):
    """Where a datapath's per-flow counters come from (nft rule counters in a lab).

    `read` gets the names of the programmed flows and returns, for those it knows, the
    packets and bytes matched since the flow was installed (absolute, not deltas). The
    table reads it before applying timeouts and before every show, so a flow with traffic
    in the datapath does not idle out. Called with the switch's lock held: keep it fast.
    """

    def read(self, names: list[str]) -> dict[str, tuple[int, int]]: ...


@dataclass
class FlowTable:
    clock: Clock
    capacity: int = DEFAULT_CAPACITY  # TCAM entries for DirectFlow
    # Entries one IPv6 flow takes: 1 by default (the 1,500 figure counts flows); 2 models
    # Trident's double-wide IPv6 keys.
    ipv6_entries: int = 1
    enabled: bool = False  # `directflow` / `no shutdown`; EOS ships it shut down
    observers: list[FlowObserver] = field(default_factory=list)
    counter_source: CounterSource | None = None
    # Rejected flows get a TCAM entry when space frees only if this is set; by default they
    # stay rejected until re-committed, so a client must notice and retry them itself.
    reprogram_rejected: bool = False
    _entries: dict[str, FlowEntry] = field(default_factory=dict)
    _order: Iterator[int] = field(default_factory=itertools.count)
    _used: int = 0  # TCAM entries in use, kept as a count: a 1,000-flow batch stays linear

    # -- queries -------------------------------------------------------------------------

    def get(self, name: str) -> FlowEntry | None:
        return self._entries.get(name)

    def entries(self) -> list[FlowEntry]:
        """Every configured flow, in configuration order."""
        return sorted(self._entries.values(), key=lambda e: e.order)

    def programmed(self) -> list[FlowEntry]:
        return [e for e in self.entries() if e.programmed]

    def used(self) -> int:
        """TCAM entries in use (= programmed flows unless `ipv6_entries` > 1)."""
        return self._used

    def cost(self, entry: FlowEntry) -> int:
        src, dst = entry.config.src, entry.config.dst
        v6 = entry.config.ethertype == ETH_IPV6 or any(
            n is not None and n.version == 6 for n in (src, dst)
        )
        return self.ipv6_entries if v6 else 1

    # -- configuration -------------------------------------------------------------------

    def commit(self, config: FlowConfig) -> FlowEntry:
        """A `flow NAME` block was left: store it and (re)program it if needed."""
        entry = self._entries.get(config.name)
        if entry is None:
            entry = FlowEntry(config=config, order=next(self._order))
            self._entries[config.name] = entry
        elif entry.config == config and entry.programmed:
            return entry
        else:
            if entry.programmed:
                self._unprogram(entry, STATUS_NOT_PROGRAMMED)
                self._notify(lambda o: o.flow_removed(entry, "replaced"))
            entry.config = config
        self._program(entry)
        return entry

    def remove(self, name: str) -> bool:
        """`no flow NAME`; False when there was no such flow (EOS accepts that silently)."""
        entry = self._entries.pop(name, None)
        if entry is None:
            return False
        if entry.programmed:
            self._unprogram(entry, STATUS_NOT_PROGRAMMED)
            self._notify(lambda o: o.flow_removed(entry, "deleted"))
            self._fill_freed()
        return True

    def remove_all(self) -> None:
        """`no directflow`: the whole block goes."""
        for entry in self.entries():
            self.remove(entry.name)

    def set_enabled(self, enabled: bool) -> None:
        if enabled == self.enabled:
            return
        self.enabled = enabled
        if enabled:
            for entry in self.entries():
                self._program(entry)
            return
        for entry in self.entries():
            if entry.programmed:
                self._unprogram(entry, STATUS_NOT_PROGRAMMED)
                self._notify(partial(_tell_removed, entry=entry, reason="shutdown"))
            entry.status = STATUS_NOT_PROGRAMMED

    def set_capacity(self, capacity: int) -> None:
        """For tests: a smaller TCAM. Flows already programmed keep their entries."""
        if capacity < 0:
            raise ValueError("capacity must be >= 0")
        self.capacity = capacity

    # -- traffic and time ----------------------------------------------------------------

    def count(self, name: str, packets: int = 1, nbytes: int = 64) -> None:
        """Packets matched a programmed flow (tests, or a datapath reading its counters)."""
        entry = self._entries.get(name)
        if entry is None or not entry.programmed:
            raise KeyError(f"flow {name!r} is not programmed")
        entry.match_packets += packets
        entry.match_bytes += nbytes
        if packets:
            entry.last_match = self.clock.now()

    def sync_counters(self) -> None:
        """Take the datapath's counters, if there is a source; more packets = activity now."""
        if self.counter_source is None:
            return
        live = [e for e in self._entries.values() if e.programmed]
        totals = self.counter_source.read([e.name for e in live])
        now = self.clock.now()
        for entry in live:
            got = totals.get(entry.name)
            if got is None:
                continue
            packets, nbytes = got
            if packets > entry.match_packets:
                entry.last_match = now
            entry.match_packets, entry.match_bytes = packets, nbytes

    def expire(self) -> list[FlowEntry]:
        """Apply idle and hard timeouts as of now; returns the flows that expired."""
        self.sync_counters()
        now = self.clock.now()
        expired: list[tuple[FlowEntry, str]] = []
        for entry in self._entries.values():
            if not entry.programmed or entry.programmed_at is None:
                continue
            cfg = entry.config
            if cfg.hard_timeout and now - entry.programmed_at >= cfg.hard_timeout:
                expired.append((entry, "hard"))
            elif cfg.idle_timeout and now - (entry.last_match or 0.0) >= cfg.idle_timeout:
                expired.append((entry, "idle"))
        expired.sort(key=lambda pair: pair[0].order)
        for entry, reason in expired:
            self._unprogram(entry, STATUS_NOT_PROGRAMMED)
            self._notify(partial(_tell_expired, entry=entry, reason=reason))
        if expired:
            self._fill_freed()
        return [e for e, _ in expired]

    # -- internals -----------------------------------------------------------------------

    def _program(self, entry: FlowEntry) -> None:
        if not self.enabled or not entry.config.programmable():
            entry.status = STATUS_NOT_PROGRAMMED
            return
        if self.used() + self.cost(entry) > self.capacity:
            entry.status = STATUS_REJECTED
            return
        now = self.clock.now()
        entry.status = STATUS_PROGRAMMED
        self._used += self.cost(entry)
        entry.programmed_at = now
        entry.last_match = now
        entry.match_packets = entry.match_bytes = 0
        self._notify(lambda o: o.flow_installed(entry))

    def _unprogram(self, entry: FlowEntry, status: str) -> None:
        if entry.programmed:
            self._used -= self.cost(entry)
        entry.status = status
        entry.programmed_at = None

    def _fill_freed(self) -> None:
        if not self.reprogram_rejected:
            return
        for entry in self.entries():
            if entry.status == STATUS_REJECTED:
                self._program(entry)

    def done(self) -> None:
        """Tell the observers a request or timeout pass is over (see flows_done)."""
        for observer in self.observers:
            observer.flows_done()

    def _notify(self, call: Callable[[FlowObserver], None]) -> None:
        for observer in self.observers:
            call(observer)
