"""The Linux datapath runner: kernel mode (and the shared part of map mode).

:class:`LinuxDatapath` owns the nft table (one libnftables handle), the ``ip rule``s and the
per-next-hop routing tables. :meth:`reconcile` observes the kernel, asks
:class:`dfagent.core.pinning.Planner` what should exist, and applies the difference.
:meth:`check` compares what nftables really holds with what the datapath wrote and
:meth:`repair` reinstalls it (a firewall reload deletes the table: nftables events wake the
loop within milliseconds). :meth:`run` loops on rtnetlink and nftables hints plus a periodic
reconcile until stopped.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import logging
import os
import resource
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from dfagent import config
from dfagent.backends.linux import conntrack, ctusers, markusers, state
from dfagent.backends.linux.ctcopy import CtCopy, SyncResult
from dfagent.backends.linux.netlink import Netlink, NetlinkHandle, OwnedRule
from dfagent.backends.linux.nft import Nft, NftError, NftHandle
from dfagent.backends.linux.rtnl import RouteOp
from dfagent.backends.linux.ruleset import (
    PROBE_INVALID,
    PROBE_PACKETS,
    SLOT_CHAIN_KINDS,
    RulesetConfig,
    T,
    chain_name,
    hexmark,
    nh_element,
    nh_map_keys,
    render_base,
    render_delete_slot_chains,
    render_elements,
    render_slot_chains,
    restore_element,
    slot_of_chain,
    verdict_slot,
)
from dfagent.core.direction import DirectionProbe
from dfagent.core.marks import MarkAllocator, MarkSpace
from dfagent.core.nexthops import IPNetwork, NextHop
from dfagent.core.pinning import Event, NhRecord, PinCounts, Plan, Planner
from dfagent.core.ports import RouteSource, RouteView

log = logging.getLogger("dfagent.linux")
CENSUS_DUTY = 100  # a full pin count at most once per 100× its CPU time: ≤ 1 % of a core
CENSUS_EVERY = 6  # and at most once per 6 passes (two conntrack processes cost ~30 ms)


class MarkConflict(RuntimeError):
    pass


class NeedsLooseTracking(MarkConflict):  # a start refused for the same kind of reason
    pass


TCP_LOOSE = "/proc/sys/net/netfilter/nf_conntrack_tcp_loose"


@dataclass
class DatapathConfig:
    vips: tuple[IPNetwork, ...]
    state_dir: str = config.DEFAULT_STATE_DIR
    reconcile_interval: float = config.DEFAULT_RECONCILE_INTERVAL
    gc_grace: float = config.DEFAULT_GC_GRACE
    dead_hold: float = config.DEFAULT_DEAD_HOLD
    record: bool = True  # kernel mode
    pin_maps: bool = False  # map mode
    pin_map_size: int = config.DEFAULT_PIN_MAP_SIZE
    # map mode: a full pin map evicts its oldest pins (the agent keeps every pin's key:
    # ~200 B each, so off unless asked)
    pin_evict: bool = False
    pin_timeout: int = config.DEFAULT_PIN_TIMEOUT
    space: MarkSpace = field(default_factory=MarkSpace)
    repair: bool = True  # watch nftables and reinstall what was deleted under us
    include_file: str | None = None  # nft script an operator's firewall config includes
    allow_mark_overlap: bool = False  # start even if other rules use dfagent's mark bits
    # the router sees one direction only: pins in per-flow maps, not conntrack
    one_direction: bool = False
    notrack: bool = False
    fin_timeout: int = config.DEFAULT_FIN_TIMEOUT
    direction_window: float = 10.0  # conntrack modes: judge "one direction?" this often
    # every N intervals a pass re-reads the routing table and dfagent's tables from the
    # kernel (the safety net: notifications drive every other change, and tell of routes
    # deleted from dfagent's tables)
    full_pass_every: int = 60
    # (VIP, protocols) of VIPs that pin more than TCP (kernel mode: udp too)
    protocols: tuple[tuple[IPNetwork, tuple[str, ...]], ...] = ()
    # kernel mode: each census copies the pins into nft maps that outlive the conntrack
    # table (`conntrack -F`); see ruleset.render_ct_copy
    ct_copy: bool = False
    # no conntrack for traffic neither to nor from a VIP (unless other rules need it: checked
    # at start, by every periodic check and on nftables hints), and the SYN-flood guard
    # (ruleset.render_untrack)
    untrack_others: bool = True
    syn_untracked: bool = False

    def ruleset(self) -> RulesetConfig:
        return RulesetConfig(
            self.vips,
            self.record,
            self.pin_maps,
            self.pin_map_size,
            self.pin_timeout,
            self.space,
            one_direction=self.one_direction,
            notrack=self.notrack,
            fin_timeout=self.fin_timeout,
            protocols=self.protocols,
            ct_copy=self.ct_copy,
            untrack_others=self.untrack_others,
            syn_untracked=self.syn_untracked,
        )

    @property
    def mode(self) -> str:
        return "map" if self.pin_maps else "kernel"


def _log(kind: str, level: int = logging.INFO, **fields: Any) -> None:
    log.log(level, "%s %s", kind, " ".join(f"{k}={v}" for k, v in fields.items()))


@dataclass
class Written:
    """What the datapath last wrote to nftables (compared with the kernel by check())."""

    nh: dict[tuple[str, str], int] = field(default_factory=dict)  # (map, key) → slot
    restore: set[int] = field(default_factory=set)  # slots in the restore map
    released: set[int] = field(default_factory=set)  # slots in the released set
    chains: dict[int, bool] = field(default_factory=dict)  # slot → chains filled (live)

    def copy(self) -> Written:
        return Written(dict(self.nh), set(self.restore), set(self.released), dict(self.chains))


class LinuxDatapath:
    def __init__(
        self,
        cfg: DatapathConfig,
        routes: Callable[[NetlinkHandle], RouteSource],
        nft: NftHandle | None = None,
        nl: NetlinkHandle | None = None,
        clock: Callable[[], float] = time.monotonic,
        count_pins: Callable[[], dict[int, int]] | None = None,
        count_slots: Callable[[frozenset[int]], dict[int, int]] | None = None,
    ) -> None:
        """``routes`` makes the route source from the datapath's netlink handle (one
        socket for reads and writes; everything runs on the agent's one thread).
        ``count_pins`` counts every slot (a census), ``count_slots`` only the given ones
        (without it, every count is a census)."""
        self.cfg = cfg
        self.untrack_asked = cfg.untrack_others  # the effective flag lives in self.cfg
        self.ct_users: list[str] = []  # other conntrack users (untrack_others only without)
        self.space = cfg.space
        self.nft: NftHandle = nft or Nft()
        self.nl: NetlinkHandle = nl or Netlink()
        self.routes = routes(self.nl)
        self.clock = clock
        if count_pins is None:  # one direction: the pins are flow-map elements, not conntrack
            nft_ = self.nft
            if cfg.one_direction:
                count_pins = lambda: count_flow_pins(nft_, cfg.space)  # noqa: E731
            elif cfg.ruleset().copies:
                count_pins = self._census_and_copy
                count_slots = count_slots or (lambda s: conntrack.count_slots(cfg.space, s))
            else:
                count_pins = lambda: conntrack.count_by_slot(cfg.space)  # noqa: E731
                count_slots = count_slots or (lambda s: conntrack.count_slots(cfg.space, s))
        self._count_all = count_pins
        self.ct_copy = CtCopy(self.nft)
        self.table_handle: int | None = None  # as the last check() listed it
        self.last_copy: SyncResult | None = None
        self._count_slots = count_slots
        self._census: dict[int, int] = {}
        self._next_census = -1e18
        # the census started at start (beside the adoption and the first pass: seconds at a
        # million entries) is handed to the first count, so a restart knows its pinned counts
        # at once instead of at the next census; the first new mark waits for it
        self._start_census: Future[PinCounts] | None = None
        self._start_carried: Future[PinCounts] | None = None
        self._count_targets: frozenset[int] = frozenset()  # slots whose pins someone waits for
        self.census_seconds = 0.0  # how long the last census took
        self.census_cpu_seconds = 0.0  # and the CPU it cost (this thread + conntrack)
        self.direction = DirectionProbe(window=cfg.direction_window)
        self._slot_family: dict[int, int] = {}
        allocator = MarkAllocator(max_index=cfg.space.max_index)
        self.planner = Planner(allocator, gc_grace=cfg.gc_grace, dead_hold=cfg.dead_hold)
        self.w = Written()
        # what was written to the per-next-hop tables: table → (gateway, ifname, dsts)
        self._routes_w: dict[int, tuple[str, str, frozenset[str]]] | None = None
        self._seen_gen: int | None = None
        self._last_pinned: dict[int, int] | None = None
        self._passes = 0
        self._last_full = -1e18
        self.route_repairs = 0
        self._unkeyable: set[NextHop] = set()
        self._unrouted: set[str] = set()
        self._lock = threading.RLock()
        self._last_count = -1e18
        self._saved: dict[str, Any] | None = None
        self._include_text: str | None = None
        self._base_snapshot: dict[str, list[Any]] | None = None
        # digests of the base last written (script) and of its rules as listed then: what
        # the state file keeps for the next start (_base_intact)
        self._base_written: dict[str, str] | None = None
        self.repairs = 0
        self.last_repair: dict[str, Any] | None = None
        self.gateway_marks: dict[tuple[int, str], int] = {}  # (family, gateway) → slot
        # (family, ifname) → slot, for interfaces that carry exactly one next hop per family
        self.interface_marks: dict[tuple[int, str], int] = {}

    # ── start: install the table, adopt what is there ────────────────────────────
    def check_mark_users(self) -> None:
        """Refuse to start when another rule writes or compares dfagent's mark bits."""
        if self.cfg.allow_mark_overlap:
            return
        users = markusers.nft_writers(self.nft)
        users += markusers.rule_readers(self.nl.fwmark_rules())
        found = markusers.conflicts(users, self.space.mask)
        if found:
            raise MarkConflict(
                "other users of the mark overlap dfagent's bits:\n  "
                + "\n  ".join(found)
                + "\nchoose free bits with --mark-mask (see docs/kernel-mode.md, 'Mark bits'),"
                " or pass --allow-mark-overlap if those rules never see VIP traffic"
            )

    def check_syn_guard(self, path: str = TCP_LOOSE) -> None:
        """The SYN-flood guard makes a VIP flow's entry from its first ACK: conntrack does
        that only with ``nf_conntrack_tcp_loose`` on (its default)."""
        if not self.cfg.syn_untracked or self.cfg.one_direction:
            return
        try:
            loose = Path(path).read_text().strip()
        except OSError:
            return  # conntrack not loaded yet: its default (1) applies once it is
        if loose == "0":
            raise NeedsLooseTracking(
                "--syn-untracked needs net.netfilter.nf_conntrack_tcp_loose=1 (connections "
                "are tracked from their first ACK); it is 0 here"
            )

    def check_ct_users(self, at_start: bool = False) -> bool:
        """Untrack non-VIP traffic only while no other rule needs conntrack (ctusers); True
        when the verdict changed since the last check (the base chains must be
        re-rendered)."""
        if not self.untrack_asked:
            return False
        try:
            users = ctusers.find(self.nft)
        except NftError as exc:
            _log("ct-users-unknown", logging.WARNING, error=repr(str(exc)))
            return False
        want = not users
        changed = want != self.cfg.untrack_others
        if users and (changed or at_start or users != self.ct_users):
            _log(
                "untrack-skipped",
                logging.WARNING,
                why=repr("other rules use conntrack: " + "; ".join(users[:5])),
                users=len(users),
            )
        elif want and (changed or at_start):
            _log("untrack-others", why=repr("no other conntrack user: non-VIP traffic untracked"))
        self.ct_users = users
        if changed:
            self.cfg = replace(self.cfg, untrack_others=want)
        return changed

    def start(self) -> None:
        self.check_mark_users()
        self.check_syn_guard()
        self.check_ct_users(at_start=True)
        had_table = self.nft.table_exists()
        script = render_base(self.cfg.ruleset())
        digest = _digest(script)
        kept = False
        try:
            kept = had_table and self._base_intact(digest)
            if not kept:
                self.nft.run(script)
                self._base_snapshot = self._list_base_rules()
            self._note_base(digest)
            now = self.clock()
            adopted = self._adopt(now)
        except BaseException:
            if not had_table:  # nothing half-installed
                with contextlib.suppress(Exception):
                    self.nft.delete_table()
            raise
        _log(
            "start",
            vips=",".join(map(str, self.cfg.vips)),
            table_existed=had_table,
            base_kept=kept,
            adopted_nexthops=adopted,
            mode=self.cfg.mode,
            mark_mask=hexmark(self.space.mask),
            untrack_others=self.cfg.untrack_others,
            syn_untracked=self.cfg.syn_untracked,
            one_direction=self.cfg.one_direction,
        )

    def _base_intact(self, script_digest: str) -> bool:
        """Whether the table holds the base this script would write, as the last agent left
        it (same script, same hooked rules as listed then, every map and set, the VIPs): then
        a restart leaves it alone. Rewriting the rules that hold ``vmap @pin4``/``@pin6``
        makes libnftables 1.0.6 fetch both maps first (0.25 s per 100,000 pins), and a
        restart is when pins are waiting."""
        saved = state.load(self.cfg.state_dir).get("base") or {}
        if saved.get("script") != script_digest:
            return False
        listing = self.nft.table_json()
        rules = _base_rules_of(listing, self.cfg.ruleset().base_chains)
        if _digest(rules) != saved.get("rules"):
            return False
        names = {str((i.get("map") or i.get("set") or {}).get("name")) for i in listing}
        if not self.cfg.ruleset().maps <= names:
            return False
        if self._kernel_vips() != {str(v) for v in self.cfg.vips}:
            return False
        self._base_snapshot = rules
        return True

    def _note_base(self, script_digest: str) -> None:
        """The base as written (or kept) now, for the state file: computed here once, not
        at every save."""
        rules = _digest(self._base_snapshot) if self._base_snapshot is not None else ""
        self._base_written = {"script": script_digest, "rules": rules}

    def _adopt(self, now: float) -> int:
        st = state.load(self.cfg.state_dir)
        marks = self.planner.marks
        vips_of: dict[NextHop, set[str]] = {}
        # 1. the per-next-hop table routes name each next hop exactly (gateway, interface)
        for r in self.nl.owned_routes():
            if not r.gateway or not r.ifname:
                continue
            with contextlib.suppress(ValueError):
                nh = NextHop(r.family, r.ifname, r.gateway)
                if marks.adopt(nh, r.table):
                    vips_of.setdefault(nh, set()).add(r.dst)
        # 2. the nft next-hop maps: "ifname" . gateway → rec_<slot>; an IPv4 route via an
        #    IPv6 gateway is keyed by "ifname" . VIP (rt ip nexthop = the destination), which
        #    names no gateway: such keys only confirm slots step 1 or the state file gave
        for mapname, fam in (("nh4", 4), ("nh6", 6)):
            for key, value in self.nft.map_elements(mapname):
                slot = verdict_slot(value)
                if not isinstance(key, list) or len(key) != 2 or slot is None:
                    continue
                self.w.nh[(mapname, f'"{key[0]}" . {key[1]}')] = slot
                with contextlib.suppress(ValueError):
                    addr = ipaddress.ip_address(str(key[1]))
                    if addr.version != fam or self._in_vip(addr):
                        continue
                    marks.adopt(NextHop(fam, str(key[0]), str(addr)), slot)
        # 3. the state file fills in the rest (next hops with no table route right now)
        for key, mark in _dict(st.get("marks"), "marks").items():
            try:
                marks.adopt(NextHop.from_key(key), int(mark))
            except (TypeError, ValueError):
                _log("state-ignored", logging.WARNING, item=f"marks.{key}", value=mark)
        for key, info in _dict(st.get("nexthops"), "nexthops").items():
            try:
                nh = NextHop.from_key(key)
                state_vips = [str(ipaddress.ip_network(v)) for v in info.get("vips", [])]
            except (AttributeError, TypeError, ValueError):
                _log("state-ignored", logging.WARNING, item=f"nexthops.{key}")
                continue
            if marks.get(nh) is not None:
                vips_of.setdefault(nh, set()).update(state_vips)
        for slot in _list(st.get("quarantine"), "quarantine"):
            if isinstance(slot, int):
                marks.reserve([slot])
        for nh, vips in vips_of.items():
            self.planner.adopt(nh, vips, now)
        # the kernel's own view of slots in use (restore map, released set, chains)
        for _key, value in self.nft.map_elements("restore"):
            slot = verdict_slot(value)
            if slot is not None:
                self.w.restore.add(slot)
        self.w.released = {
            s
            for m in self.nft.set_elements("released")
            if isinstance(m, int)
            for s in [self.space.slot(m)]
            if s is not None
        }
        self.w.chains = {s: True for s in self._kernel_slot_chains()}
        # marks on live connections that no known next hop owns (a crash, a cleanup that
        # left conntrack alone, another mask): never hand them out while entries carry them.
        # Counted in the background: only a new mark waits for the count (a restart adopts
        # every mark it needs, so its first pass, and the API, do not wait)
        fut: Future[PinCounts] = Future()
        self._start_census = self._start_carried = fut
        self._last_count = now
        marks.before_new = self._reserve_carried
        threading.Thread(target=self._census_at_start, args=(fut,), name="start-count",
                         daemon=True).start()  # fmt: skip
        return len(vips_of)

    def _census_at_start(self, fut: Future[PinCounts]) -> None:
        try:
            fut.set_result(self.count_pins(census=True))
        except BaseException as exc:
            fut.set_exception(exc)

    def _reserve_carried(self) -> None:
        """Before the first new mark: reserve the marks the start's count found carried."""
        fut, self._start_carried = self._start_carried, None
        self.planner.marks.before_new = None
        if fut is None:
            return
        try:
            carried = fut.result()
        except Exception as exc:
            _log("count-failed", logging.WARNING, error=repr(exc))
            return
        for slot in sorted(self.planner.marks.reserve(carried)):
            _log("mark-quarantined", logging.WARNING, mark=hexmark(slot),
                 entries=carried.get(slot, 0))  # fmt: skip

    def _in_vip(self, addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return any(addr.version == v.version and addr in v for v in self.cfg.vips)

    def _kernel_slot_chains(self) -> set[int]:
        out = set()
        for item in self.nft.table_json():
            ch = item.get("chain")
            if ch:
                slot = slot_of_chain(str(ch.get("name", "")))
                if slot is not None:
                    out.add(slot)
        return out

    @property
    def records(self) -> dict[NextHop, NhRecord]:
        return self.planner.records

    def wants_count(self) -> bool:
        """A conntrack dump can be big: at most once per interval, and only while a next hop
        waits for its pins to drain (or a quarantined mark for its entries to go)."""
        due = self.clock() - self._last_count >= self.cfg.reconcile_interval
        waiting = any(not r.in_ecmp or not r.alive for r in self.planner.records.values())
        return due and (waiting or bool(self.planner.marks.quarantine))

    # ── one reconcile round ──────────────────────────────────────────────────────
    def reconcile(
        self,
        force_count: bool = False,
        pinned: Mapping[int, int] | None = None,
        count: bool = True,
    ) -> list[Event]:
        """Observe, plan, apply. ``pinned``: a count made elsewhere (the agent counts in a
        worker thread, and passes ``count=False``); else, with ``count``, one is made here
        when forced or :meth:`wants_count`."""
        with self._lock:
            now = self.clock()
            self._passes += 1
            t_full = time.monotonic()
            full = now - self._last_full >= self.cfg.full_pass_every * self.cfg.reconcile_interval
            if full:
                self._last_full = now
            touched = bool(getattr(self.routes, "tables_touched", False))
            if full and self.check_ct_users():
                self.repair("conntrack users changed")
            if full and hasattr(self.routes, "refresh"):
                self.routes.refresh()  # the safety net: notifications may have been missed
            view = self.routes.observe(self.cfg.vips)
            self._note_unrouted(view)
            if pinned is not None:
                self._last_count = now
            elif count and (force_count or self.wants_count()):
                try:
                    pinned = self.count_pins()
                    self._last_count = now
                except Exception as exc:  # never GC on a failed count
                    _log("count-failed", logging.WARNING, error=repr(exc))
            if (
                not full
                and not touched
                and view.generation is not None
                and view.generation == self._seen_gen
                and (pinned is None or (pinned == self._last_pinned and not self._uncounted()))
                and not self._waiting()
            ):  # nothing new, nobody waiting for a grace period: nothing to plan or write
                if not self.cfg.one_direction:
                    self._check_direction(now)
                return []
            plan, events = self.planner.step(now, view.current, view.alive, pinned)
            for ev in events:
                _log(
                    f"nexthop-{ev.kind}",
                    logging.WARNING if ev.kind == "dead" else logging.INFO,
                    nexthop=str(ev.nexthop),
                    family=ev.nexthop.family,
                    mark=hexmark(self.space.mark(ev.mark)),
                    table=ev.mark,
                    pinned=ev.pinned,
                )
            if touched:
                self.routes.tables_touched = False  # type: ignore[attr-defined]
            self._apply(plan, verify=full or touched)
            self._seen_gen = view.generation
            if full:
                _log("full-pass", ms=round((time.monotonic() - t_full) * 1000, 1),
                     routes=len(view.current), nexthops=len(self.planner.records))  # fmt: skip
            if pinned is not None:
                self._last_pinned = dict(pinned)
            # counted alone at the next count: next hops that wait (drained, dead), marks in
            # quarantine, and next hops with no figure yet (added since the last census)
            self._count_targets = frozenset(
                {
                    r.mark
                    for r in self.planner.records.values()
                    if not r.in_ecmp or not r.alive or r.pinned is None
                }
                | self.planner.marks.quarantine
            )
            if not self.cfg.one_direction:
                self._check_direction(now)
            self.gateway_marks = {(nh.family, nh.gateway): m for nh, m in plan.nh_map.items()}
            self.interface_marks = _unique_by_interface(plan.nh_map)
            self._save()
            return events

    def _uncounted(self) -> bool:
        """A next hop added since the last count has no figure yet: a count equal to the
        last one must still reach the planner to give it one (its 0 is news)."""
        return any(r.pinned is None for r in self.planner.records.values())

    def _waiting(self) -> bool:
        """A next hop waits for its pins to drain or its grace period (or a mark for its
        entries to go): passes must go on even when no route changed."""
        if self.planner.marks.quarantine:
            return True
        return any(not r.in_ecmp or not r.alive for r in self.planner.records.values())

    def _note_unrouted(self, view: RouteView) -> None:
        """Say once when a VIP covers no route with a gateway (and when it does again)."""
        if view.unrouted is not None:
            unrouted = set(view.unrouted)
            routed = {str(v) for v in self.cfg.vips} - unrouted
        else:  # a source keyed by VIP: an empty set is an unrouted VIP
            unrouted = {vip for vip, nhs in view.current.items() if not nhs}
            routed = {vip for vip, nhs in view.current.items() if nhs}
        for vip in sorted(unrouted - self._unrouted):
            _log(
                "vip-unrouted",
                logging.WARNING,
                vip=vip,
                hint="'no route with a gateway lies in or around it: nothing to pin'",
            )
        for vip in sorted(self._unrouted & routed):
            _log("vip-routed", vip=vip)
        self._unrouted = (self._unrouted | unrouted) - routed

    @property
    def unrouted(self) -> set[str]:
        return set(self._unrouted)

    # ── pin counts ──────────────────────────────────────────────────────────────
    def count_pins(self, census: bool = False) -> PinCounts:
        """slot → pinned connections. A full count (census) costs seconds at a million
        entries, so it runs at most once per CENSUS_DUTY × its own CPU time (≤ 1 % of a
        core) or CENSUS_EVERY intervals; in between only the slots someone waits for
        (drained, dead, quarantined) are counted, each by a dump the kernel filters on its
        mark, and the other slots keep their census figure. Runs in the count thread."""
        now = self.clock()
        if self._start_census is not None and not census:
            started, self._start_census = self._start_census, None
            return started.result()  # its failure is this count's
        targets = self._count_targets
        # without a per-slot count (one direction: the flow maps), a waiting slot needs one
        alone = self._count_slots is None and bool(targets)
        if census or alone or now >= self._next_census:
            t0, cpu0 = time.monotonic(), _cpu_seconds()
            counts = self._count_all()
            took = time.monotonic() - t0
            # the duty cycle is about CPU: a census that waited on a busy machine cost no
            # more than on an idle one, so its wall time would stretch the schedule for nothing
            cpu = _cpu_seconds() - cpu0
            self.census_seconds = took
            self.census_cpu_seconds = cpu
            entries = sum(counts.values())
            news = self._next_census < -1e17 or entries != sum(self._census.values())
            self._census = dict(counts)
            self._next_census = now + max(
                CENSUS_EVERY * self.cfg.reconcile_interval, CENSUS_DUTY * cpu
            )
            _log(
                "pins-counted",
                logging.INFO if news or took >= 0.1 else logging.DEBUG,
                entries=entries,
                ms=round(took * 1000, 1),
                cpu_ms=round(cpu * 1000, 1),
                next_census_s=round(self._next_census - now, 1),
            )
            return PinCounts(counts)
        got = self._count_slots(targets) if targets and self._count_slots else {}
        fresh = {s: got.get(s, 0) for s in targets}
        self._census.update(fresh)
        return PinCounts(fresh, fresh=targets)

    def _census_and_copy(self) -> dict[int, int]:
        """A census that also brings the conntrack copy up to date (count thread; the nft
        handle serialises its writes with the main thread's)."""
        counts, flows = conntrack.census(self.space)
        # a snapshot without the lock: the loop may hold it while it waits for this count
        # (the start's census: the first new mark waits for it); list() copies under the GIL
        live = {s for s, ok in list(self.w.chains.items()) if ok}
        res = self.ct_copy.sync(flows, live, self.table_handle)
        self.last_copy = res
        _log(
            "ct-copied",
            logging.WARNING if res.failed else logging.DEBUG,
            flows=res.copied,
            added=res.added,
            deleted=res.deleted,
            skipped=res.skipped,
            failed=res.failed,
            full=res.full,
            ms=round(res.seconds * 1000, 1),
        )
        return counts

    def _want(self, plan: Plan) -> Written:
        """What nftables should hold for this plan."""
        want = Written()
        for nh, slot in plan.nh_map.items():
            vips = plan.tables[slot][1] if nh.via_v6_for_v4 and slot in plan.tables else ()
            keys = nh_map_keys(nh, vips)
            if not keys and nh not in self._unkeyable:
                self._unkeyable.add(nh)
                _log(
                    "nexthop-not-pinnable",
                    logging.WARNING,
                    nexthop=str(nh),
                    reason="v4-via-v6-needs-/32-vip",
                )
            for key in keys:
                want.nh[key] = slot
        want.restore = set(plan.rules)
        want.released = set(plan.released)
        want.chains = {s: True for s in plan.rules}
        # chains still referenced by pins or records of a dead next hop: kept, emptied
        for s in self.w.chains:
            want.chains.setdefault(s, False)
        return want

    def _nft_script(self, want: Written, full: bool = False) -> str:
        """Chains first (elements jump to them), then element changes. ``full``: rewrite
        everything (repair), else only the difference from what was written."""
        have = Written() if full else self.w
        pin, one = self.cfg.ruleset().pin_chains, self.cfg.one_direction
        script = ""
        for slot, live in sorted(want.chains.items()):
            if full or have.chains.get(slot) != live:
                fam = self._slot_family.get(slot, 4)
                script += render_slot_chains(self.space, slot, pin, live, one, fam)
        if full:
            script += "".join(f"flush map {T} {m}\n" for m in ("nh4", "nh6", "restore"))
            script += f"flush set {T} released\n"
        stale = [k for k, m in have.nh.items() if want.nh.get(k) != m]
        fresh = [k for k, m in want.nh.items() if have.nh.get(k) != m]
        for mapname in ("nh4", "nh6"):
            script += render_elements("delete", mapname, [k for mn, k in stale if mn == mapname])
            script += render_elements(
                "add",
                mapname,
                [nh_element(k, want.nh[(mn, k)]) for mn, k in fresh if mn == mapname],
            )
        sp = self.space
        for name, want_set, have_set, element in (
            ("restore", want.restore, have.restore, lambda s: restore_element(sp, s)),
            ("released", want.released, have.released, lambda s: hexmark(sp.mark(s))),
        ):
            gone = [hexmark(sp.mark(s)) for s in sorted(have_set - want_set)]
            script += render_elements("delete", name, gone)
            script += render_elements(
                "add", name, [element(s) for s in sorted(want_set - have_set)]
            )
        return script

    def _apply(self, plan: Plan, verify: bool = False) -> None:
        """Write the difference between the plan and what was written. ``verify``: compare
        with what the kernel holds instead (the safety net, or after someone deleted routes
        in dfagent's tables): whatever went missing is written again, and counted."""
        t0 = time.monotonic()
        self._slot_family.update(plan.rules)
        want = self._want(plan)
        written = self._routes_w
        if verify or written is None:
            have: dict[int, tuple[str, str, frozenset[str]]] = {}
            kernel: dict[tuple[int, str], tuple[str, str]] = {}
            for rt in self.nl.owned_routes():
                kernel[(rt.table, rt.dst)] = (rt.gateway, rt.ifname)
            by_table: dict[int, dict[str, tuple[str, str]]] = {}
            for (t, d), v in kernel.items():
                by_table.setdefault(t, {})[d] = v
            for t, dsts in by_table.items():
                vias = set(dsts.values())
                gw, ifn = next(iter(vias)) if len(vias) == 1 else ("", "")
                have[t] = (gw, ifn, frozenset(dsts))  # a mixed table is rewritten whole
            if written is not None:
                lost = sum(
                    len(vips - have.get(t, ("", "", frozenset()))[2])
                    if have.get(t, ("", ""))[:2] == (gw, ifn)
                    else len(vips)
                    for t, (gw, ifn, vips) in written.items()
                    if t in plan.tables
                )
                if lost:
                    self.route_repairs += lost
                    _log("table-routes-repaired", logging.WARNING, routes=lost,
                         repairs=self.route_repairs)  # fmt: skip
        else:
            have = written
        # additions in dependency order: table routes, rules, then nft (records new pins)
        ops: list[RouteOp] = []
        stale: list[RouteOp] = []
        new_w: dict[int, tuple[str, str, frozenset[str]]] = {}
        for slot, (nh, vips) in plan.tables.items():
            old = have.get(slot)
            new_w[slot] = (nh.gateway, nh.ifname, vips)
            if old is not None and old[2] is vips and old[:2] == (nh.gateway, nh.ifname):
                continue  # an unchanged table: nothing to compare
            same_via = old is not None and old[:2] == (nh.gateway, nh.ifname)
            add = vips - old[2] if same_via and old is not None else vips
            try:
                ops += [self.nl.route_op(slot, d, nh) for d in sorted(add)]
            except LookupError as exc:
                _log("route-failed", logging.ERROR, table=slot, nexthop=str(nh), error=repr(exc))
                new_w[slot] = ("", "", frozenset())
            if old is not None and same_via:
                stale += [_del_op(slot, d) for d in sorted(old[2] - vips)]
        for slot, old in have.items():
            if slot not in plan.tables:
                stale += [_del_op(slot, d) for d in sorted(old[2])]
        failed = {(op.table, op.dst) for op, _err in self._apply_ops(ops)}
        have_rules = self._rules_now()
        have_keys = {(r.family, r.mark, r.mask, r.table) for r in have_rules}
        for slot, fam in plan.rules.items():
            if (fam, self.space.mark(slot), self.space.mask, slot) not in have_keys:
                try:
                    self.nl.add_rule(fam, self.space.mark(slot), self.space.mask, slot)
                except Exception as exc:
                    _log("rule-failed", logging.ERROR, table=slot, error=repr(exc))
        script = self._nft_script(want)
        if script:
            try:
                self.nft.run(script)
                self.w = want
            except NftError as exc:
                _log("nft-failed", logging.ERROR, error=str(exc))
                if self.cfg.repair:
                    self.repair("apply failed")
        self._drop_chains()
        self._write_include()

        # removals: rules, then routes
        for r in have_rules:
            if plan.rules.get(r.table) != r.family or r.mark != self.space.mark(r.table):
                self.nl.del_rule(r)
        self._apply_ops(stale)
        for t in {t for t, _d in failed}:  # written again at the next pass
            gw, ifn, vips = new_w[t]
            new_w[t] = (gw, ifn, frozenset(v for v in vips if (t, v) not in failed))
        self._routes_w = new_w
        if ops or stale:
            _log(
                "tables-written",
                routes_added=len(ops) - len(failed),
                routes_deleted=len(stale),
                failed=len(failed),
                table_routes=sum(len(v[2]) for v in new_w.values()),
                ms=round((time.monotonic() - t0) * 1000, 1),
            )

    def _apply_ops(self, ops: list[RouteOp]) -> list[tuple[RouteOp, int]]:
        if not ops:
            return []
        failed = self.nl.apply_routes(ops)
        for op, err in failed[:20]:  # a whole batch failing says it once per route, capped
            _log("route-failed", logging.ERROR, table=op.table, vip=op.dst,
                 nexthop=op.gateway or "-", error=os.strerror(err))  # fmt: skip
        return failed

    def _drop_chains(self) -> None:
        """Delete emptied slot chains nothing jumps to any more (pins time out first)."""
        for slot, live in list(self.w.chains.items()):
            if live or slot in self.w.released:
                continue
            try:
                self.nft.run(render_delete_slot_chains(slot, self.cfg.ruleset().pin_chains))
            except NftError:
                continue  # still referenced (a pin that has not timed out): next round
            del self.w.chains[slot]

    def _check_direction(self, now: float) -> None:
        """Warn when the VIP traffic looks one-directional (conntrack pins cannot work)."""
        try:
            c = self.nft.counters()
        except Exception as exc:
            _log("direction-probe-failed", logging.WARNING, error=repr(exc))
            return
        before = self.direction.verdict.suspected
        v = self.direction.observe(now, c.get(PROBE_PACKETS, 0), c.get(PROBE_INVALID, 0))
        if v is None or v.suspected == before:
            return
        if v.suspected:
            _log(
                "one-direction-suspected",
                logging.WARNING,
                packets=v.packets,
                invalid=v.invalid,
                warnings=v.warnings,
                hint="'conntrack sees no replies (direct server return or an asymmetric return"
                " path?): pins in conntrack do not apply; run with --one-direction'",
            )
        else:
            _log("one-direction-cleared", packets=v.packets, invalid=v.invalid)

    def _rules_now(self) -> list[OwnedRule]:
        return self.nl.owned_rules()

    # ── what nftables really holds: check and repair ─────────────────────────────
    def check(self) -> list[str]:
        """What is missing or changed in dfagent's table, compared with what was written
        (empty: all there). Costs a terse table listing plus the small maps."""
        with self._lock:
            try:
                listing = self.nft.table_json()
            except NftError:
                return ["table"]
            chains: dict[str, list[Any]] = {}
            maps: set[str] = set()
            for item in listing:
                if "table" in item:  # a re-created table has a new one (the copy cares)
                    self.table_handle = int(item["table"].get("handle", -1))
                elif "chain" in item:
                    chains.setdefault(str(item["chain"]["name"]), [])
                elif "rule" in item:
                    r = item["rule"]
                    chains.setdefault(str(r["chain"]), []).append(r.get("expr"))
                elif "map" in item or "set" in item:
                    maps.add(str((item.get("map") or item.get("set") or {}).get("name")))
            missing: list[str] = []
            rs = self.cfg.ruleset()
            missing += [f"map {m}" for m in sorted(rs.maps - maps)]
            expected = self._base_rules()
            for c in rs.base_chains:
                if chains.get(c) != expected.get(c):
                    missing.append(f"chain {c}")
            for slot, live in self.w.chains.items():
                for kind in SLOT_CHAIN_KINDS:
                    if kind == "pin" and not rs.pin_chains:
                        continue
                    got = chains.get(chain_name(kind, slot))
                    if got is None or len(got) != int(live):
                        missing.append(f"chain {chain_name(kind, slot)}")
            if missing:
                return missing
            if self._kernel_small_maps() != (self.w.nh, self.w.restore, self.w.released):
                missing.append("next-hop maps")
            if self._kernel_vips() != {str(v) for v in self.cfg.vips}:
                missing.append("vip sets")
            return missing

    def _base_rules(self) -> dict[str, list[Any]]:
        """The hooked chains' rules as nft listed them right after dfagent installed them."""
        if self._base_snapshot is None:
            self._base_snapshot = self._list_base_rules()
        return self._base_snapshot

    def _list_base_rules(self) -> dict[str, list[Any]]:
        # not `list chain`: it fetches the pin maps
        return _base_rules_of(self.nft.table_json(), self.cfg.ruleset().base_chains)

    def _kernel_small_maps(self) -> tuple[dict[tuple[str, str], int], set[int], set[int]]:
        nh: dict[tuple[str, str], int] = {}
        for mapname in ("nh4", "nh6"):
            for key, value in self.nft.map_elements(mapname):
                slot = verdict_slot(value)
                if isinstance(key, list) and len(key) == 2 and slot is not None:
                    nh[(mapname, f'"{key[0]}" . {key[1]}')] = slot
        restore = {
            s
            for _k, v in self.nft.map_elements("restore")
            for s in [verdict_slot(v)]
            if s is not None
        }
        released = {
            s
            for m in self.nft.set_elements("released")
            if isinstance(m, int)
            for s in [self.space.slot(m)]
            if s is not None
        }
        return nh, restore, released

    def _kernel_vips(self) -> set[str]:
        out = set()
        for name in ("vip4", "vip6"):
            for e in self.nft.set_elements(name):
                if isinstance(e, dict) and "prefix" in e:
                    out.add(f"{e['prefix']['addr']}/{e['prefix']['len']}")
                elif isinstance(e, str):
                    out.add(str(ipaddress.ip_network(e)))
        return out

    def repair(self, reason: str) -> bool:
        """Reinstall the table, slot chains and small maps in one transaction."""
        with self._lock:
            t0 = time.monotonic()
            base = render_base(self.cfg.ruleset())
            want = self.w.copy()
            script = base + self._nft_script(want, full=True)
            try:
                self.nft.run(script)
            except NftError as exc:
                _log("repair-failed", logging.ERROR, reason=reason, error=str(exc))
                return False
            self.w = want
            self._base_snapshot = self._list_base_rules()
            self._note_base(_digest(base))
            self.repairs += 1
            ms = round((time.monotonic() - t0) * 1000, 1)
            self.last_repair = {"at": time.time(), "reason": reason, "ms": ms}
            _log(
                "nft-repaired",
                logging.WARNING,
                reason=repr(reason),
                ms=ms,
                repairs=self.repairs,
                lost="pin-maps" if self.cfg.pin_maps and "table" in reason else "none",
            )
            self._save()
            return True

    def check_and_repair(self) -> bool:
        """True if something had to be repaired."""
        # a firewall reload (the hint) may bring rules that need conntrack (NAT, ct state):
        # stop untracking other traffic now, not at the next full pass
        if self.check_ct_users():
            return self.repair("conntrack users changed")
        missing = self.check()
        if not missing:
            return False
        return self.repair(", ".join(missing[:6]) + ("…" if len(missing) > 6 else ""))

    # ── files the operator and status read ──────────────────────────────────────
    def include_script(self) -> str:
        """The whole table as one nft script: an operator's firewall config that starts
        with ``flush ruleset`` includes it, so a reload re-creates dfagent's table in the
        same transaction and pinning never lapses."""
        want = self.w.copy()
        body = render_base(self.cfg.ruleset()) + self._nft_script(want, full=True)
        head = (
            "# Written by dfagent: its table, next-hop maps and slot chains as of now.\n"
            '# Include it after `flush ruleset` in /etc/nftables.conf (include "<this file>")\n'
            "# so a firewall reload re-creates dfagent's table in the same transaction.\n"
        )
        return head + body

    def _write_include(self) -> None:
        if not self.cfg.include_file:
            return
        text = self.include_script()
        if text == self._include_text:
            return
        try:
            state.write_atomic(self.cfg.include_file, text)
            self._include_text = text
        except OSError as exc:
            _log("include-write-failed", logging.ERROR, path=self.cfg.include_file, error=repr(exc))

    def _save(self) -> None:
        data = {
            "version": 2,
            "vips": [str(v) for v in self.cfg.vips],
            "mode": self.cfg.mode,
            "mark_mask": hexmark(self.space.mask),
            "one_direction": self.cfg.one_direction,
            "ct_copy": self.cfg.ruleset().copies,
            # what the agent untracks, and why not (the other conntrack users it found)
            "untrack_others": self.cfg.untrack_others,
            "syn_untracked": self.cfg.syn_untracked,
            "conntrack_users": self.ct_users[:20],
            "direction": self.direction.verdict.to_json(),
            "marks": self.planner.marks.to_json(),
            "quarantine": sorted(self.planner.marks.quarantine),
            "nexthops": {
                nh.key(): {"vips": sorted(rec.vips)} for nh, rec in self.planner.records.items()
            },
            "status": self.planner.status(),
            "repairs": self.repairs,
            # what a restart compares before leaving the base alone (see _base_intact)
            "base": self._base_written,
            "last_repair": self.last_repair,
            "include_file": self.cfg.include_file,
        }
        if data == self._saved:  # written only when something changed
            return
        try:
            state.save(self.cfg.state_dir, {**data, "updated": time.time()})
            self._saved = data
        except OSError as exc:
            _log(
                "state-save-failed",
                logging.ERROR,
                path=str(state.state_path(self.cfg.state_dir)),
                error=repr(exc),
            )

    def resolve_mark(self, family: int, nexthop: str | NextHop) -> int | None:
        """Slot of an ECMP member (for map mode): ``nexthop`` is a gateway address,
        ``gateway%ifname``, ``%ifname`` (the one next hop of the flow's family on that
        interface: a mirror session per member interface serves v4 and v6 alike, and v6
        next hops are often link-local) or a NextHop. Pass this to :class:`MapPinner`."""
        if isinstance(nexthop, NextHop):
            return self.gateway_marks.get((nexthop.family, nexthop.gateway))
        if nexthop.startswith("%"):
            return self.interface_marks.get((family, nexthop[1:]))
        gw = nexthop.partition("%")[0]
        with contextlib.suppress(ValueError):
            gw = str(ipaddress.ip_address(gw))
        return self.gateway_marks.get((family, gw))

    def close(self) -> None:
        self.nl.close()


def count_flow_pins(nft: NftHandle, space: MarkSpace) -> dict[int, int]:
    """slot → elements of the one-direction flow maps (``flow4``/``flow6``) carrying it.

    A full listing: fine for tens of thousands of flows, about 47 s at a million (field
    notes), so the agent only counts while a next hop waits for its pins to drain."""
    counts: dict[int, int] = {}
    for mapname in ("flow4", "flow6"):
        for _key, value in nft.map_elements(mapname):
            slot = space.slot(value) if isinstance(value, int) else None
            if slot is not None:
                counts[slot] = counts.get(slot, 0) + 1
    return counts


def _dict(value: Any, what: str) -> dict[str, Any]:
    if value is None or isinstance(value, dict):
        return value or {}
    _log("state-ignored", logging.WARNING, item=what, reason=f"not an object: {type(value)}")
    return {}


def _list(value: Any, what: str) -> list[Any]:
    if value is None or isinstance(value, list):
        return value or []
    _log("state-ignored", logging.WARNING, item=what, reason=f"not a list: {type(value)}")
    return []


def _del_op(table: int, dst: str) -> RouteOp:
    return RouteOp(6 if ":" in dst else 4, table, dst, delete=True)


def _unique_by_interface(nh_map: dict[NextHop, int]) -> dict[tuple[int, str], int]:
    """(family, ifname) → slot where that interface has one next hop of the family."""
    seen: dict[tuple[int, str], list[int]] = {}
    for nh, mark in nh_map.items():
        seen.setdefault((nh.family, nh.ifname), []).append(mark)
    return {key: marks[0] for key, marks in seen.items() if len(marks) == 1}


__all__ = ["DatapathConfig", "LinuxDatapath", "MarkConflict"]


def _cpu_seconds() -> float:
    """CPU time of this thread and of the children reaped so far (the conntrack dumps)."""
    ch = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.thread_time() + ch.ru_utime + ch.ru_stime


def _digest(value: Any) -> str:
    """A stable digest of a script (text) or a listing (JSON-able)."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _base_rules_of(listing: list[dict[str, Any]], chains: Any) -> dict[str, list[Any]]:
    """The hooked chains' rules (their expressions) in a terse table listing."""
    out: dict[str, list[Any]] = {c: [] for c in chains}
    for item in listing:
        rule = item.get("rule")
        if rule and rule.get("chain") in out:
            out[str(rule["chain"])].append(rule.get("expr"))
    return out
