"""The Linux datapath runner: kernel mode (and the shared part of map mode).

:class:`LinuxDatapath` owns the nft table (one libnftables handle), the ``ip rule``s and the
per-next-hop routing tables. :meth:`reconcile` observes the kernel, asks
:class:`dfagent.core.pinning.Planner` what should exist, and applies the difference.
:meth:`run` loops on rtnetlink hints plus a periodic reconcile until stopped.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from dfagent.backends.linux import conntrack, state
from dfagent.backends.linux.netlink import (
    NUD_FAILED,
    NUD_GOOD,
    Netlink,
    OwnedRoute,
    OwnedRule,
    RouteEvents,
)
from dfagent.backends.linux.nft import Nft, NftError
from dfagent.backends.linux.ruleset import (
    DEFAULT_FIN_TIMEOUT,
    PROBE_INVALID,
    PROBE_PACKETS,
    RulesetConfig,
    nh_map_keys,
    render_base,
    render_elements,
)
from dfagent.core.direction import DirectionProbe
from dfagent.core.marks import MarkAllocator, is_dfagent_mark
from dfagent.core.nexthops import IPNetwork, NextHop
from dfagent.core.pinning import Event, Plan, Planner

log = logging.getLogger("dfagent.linux")


@dataclass
class DatapathConfig:
    vips: tuple[IPNetwork, ...]
    state_dir: str = state.DEFAULT_STATE_DIR
    reconcile_interval: float = 5.0
    gc_grace: float = 5.0
    dead_hold: float = 30.0
    record: bool = True  # kernel mode
    pin_maps: bool = False  # map mode
    pin_map_size: int = 2_000_000
    pin_timeout: int = 300
    # the router sees one direction only: pins in per-flow maps, not conntrack
    one_direction: bool = False
    notrack: bool = False
    fin_timeout: int = DEFAULT_FIN_TIMEOUT
    direction_window: float = 10.0  # conntrack modes: judge "one direction?" this often

    def ruleset(self) -> RulesetConfig:
        return RulesetConfig(
            self.vips,
            self.record,
            self.pin_maps,
            self.pin_map_size,
            self.pin_timeout,
            one_direction=self.one_direction,
            notrack=self.notrack,
            fin_timeout=self.fin_timeout,
        )


def _log(kind: str, **fields: Any) -> None:
    log.info("%s %s", kind, " ".join(f"{k}={v}" for k, v in fields.items()))


class Liveness:
    """Link up and neighbour not FAILED; once dead, a next hop stays dead until its
    neighbour entry is confirmed good again (an expired FAILED entry is no proof of life)."""

    def __init__(self, nl: Netlink) -> None:
        self.nl = nl
        self.dead: set[NextHop] = set()
        self._neigh: dict[tuple[int, str], int] = {}

    def refresh(self) -> None:
        self._neigh = self.nl.neighbour_states()

    def __call__(self, nh: NextHop) -> bool:
        idx = self.nl.ifindex(nh.ifname)
        if idx is None or not self.nl.link_up(nh.ifname):
            self.dead.add(nh)
            return False
        st = self._neigh.get((idx, nh.gateway))
        if st is not None and st & NUD_FAILED:
            self.dead.add(nh)
            return False
        if nh in self.dead:
            if st is not None and st & NUD_GOOD:
                self.dead.discard(nh)
                return True
            return False
        return True


class LinuxDatapath:
    def __init__(
        self,
        cfg: DatapathConfig,
        nft: Nft | None = None,
        nl: Netlink | None = None,
        clock: Callable[[], float] = time.monotonic,
        count_pins: Callable[[], dict[int, int]] | None = None,
    ) -> None:
        self.cfg = cfg
        self.nft = nft or Nft()
        if count_pins is None:  # one direction: the pins are flow-map elements, not conntrack
            nft_ = self.nft
            count_pins = (
                (lambda: count_flow_pins(nft_)) if cfg.one_direction else conntrack.count_by_mark
            )
        self.nl = nl or Netlink()
        self.clock = clock
        self.count_pins = count_pins
        self.planner = Planner(MarkAllocator(), gc_grace=cfg.gc_grace, dead_hold=cfg.dead_hold)
        self.liveness = Liveness(self.nl)
        self._elements: dict[tuple[str, str], int] = {}  # (map, key) → mark in nh4/nh6
        self._released: set[int] = set()
        self._unkeyable: set[NextHop] = set()
        self._lock = threading.Lock()
        self._last_count = -1e18
        self.gateway_marks: dict[tuple[int, str], int] = {}  # (family, gateway) → mark
        # (family, ifname) → mark, for interfaces that carry exactly one next hop per family
        self.interface_marks: dict[tuple[int, str], int] = {}
        self.stop_event = threading.Event()
        self.direction = DirectionProbe(window=cfg.direction_window)

    # ── start: install the table, adopt what is there ────────────────────────────
    def start(self) -> None:
        had_table = self.nft.table_exists()
        self.nft.run(render_base(self.cfg.ruleset()))
        now = self.clock()
        adopted = self._adopt(now)
        _log(
            "start",
            vips=",".join(map(str, self.cfg.vips)),
            table_existed=had_table,
            adopted_nexthops=adopted,
            mode="map" if self.cfg.pin_maps else "kernel",
            one_direction=self.cfg.one_direction,
        )

    def _adopt(self, now: float) -> int:
        st = state.load(self.cfg.state_dir)
        marks = self.planner.marks
        # 1. what the kernel uses right now wins: nft next-hop maps, then tables/routes
        for mapname, fam in (("nh4", 4), ("nh6", 6)):
            for key, value in self.nft.map_elements(mapname):
                if not isinstance(key, list) or len(key) != 2 or not isinstance(value, int):
                    continue
                self._elements[(mapname, f'"{key[0]}" . {key[1]}')] = value
                try:
                    nh = NextHop(fam, str(key[0]), str(key[1]))
                except ValueError:
                    continue
                if ipaddress.ip_address(nh.gateway).version == fam:
                    marks.adopt(nh, value)
        routes = self.nl.owned_routes()
        vips_of: dict[NextHop, set[str]] = {}
        for r in routes:
            if not r.gateway or not r.ifname:
                continue
            nh = NextHop(r.family, r.ifname, r.gateway)
            if marks.adopt(nh, r.table):
                vips_of.setdefault(nh, set()).add(r.dst)
        # 2. the state file fills in the rest (allocations of next hops not present now)
        for key, mark in (st.get("marks") or {}).items():
            try:
                marks.adopt(NextHop.from_key(key), int(mark))
            except ValueError:
                continue
        for key, info in (st.get("nexthops") or {}).items():
            try:
                nh = NextHop.from_key(key)
            except ValueError:
                continue
            if marks.get(nh) is not None:
                vips_of.setdefault(nh, set()).update(info.get("vips", []))
        for nh, vips in vips_of.items():
            self.planner.adopt(nh, vips, now)
        self._released = {int(m) for m in self.nft.set_elements("released") if isinstance(m, int)}
        return len(vips_of)

    # ── one reconcile round ──────────────────────────────────────────────────────
    def reconcile(self, force_count: bool = False) -> list[Event]:
        with self._lock:
            now = self.clock()
            self.nl.refresh_names()
            self.liveness.refresh()
            current = {str(v): self.nl.ecmp_set(v) for v in self.cfg.vips}
            # a conntrack dump can be big: at most once per interval (GC waits for it)
            due = now - self._last_count >= self.cfg.reconcile_interval
            waiting = any(not r.in_ecmp or not r.alive for r in self.planner.records.values())
            pinned = None
            if force_count or (due and waiting):
                try:
                    pinned = self.count_pins()
                    self._last_count = now
                except Exception as exc:  # never GC on a failed count
                    _log("count-failed", error=repr(exc))
            plan, events = self.planner.step(now, current, self.liveness, pinned)
            for ev in events:
                _log(
                    f"nexthop-{ev.kind}",
                    nexthop=str(ev.nexthop),
                    family=ev.nexthop.family,
                    mark=f"0x{ev.mark:08x}",
                    pinned=ev.pinned,
                )
            self._apply(plan)
            if not self.cfg.one_direction:
                self._check_direction(now)
            self.gateway_marks = {(nh.family, nh.gateway): m for nh, m in plan.nh_map.items()}
            self.interface_marks = _unique_by_interface(plan.nh_map)
            self._save()
            return events

    def _apply(self, plan: Plan) -> None:
        vips_by_mark: dict[int, set[str]] = {}
        for table, vip, _nh in plan.routes:
            vips_by_mark.setdefault(table, set()).add(vip)
        want_elems: dict[tuple[str, str], int] = {}
        for nh, mark in plan.nh_map.items():
            keys = nh_map_keys(nh, vips_by_mark.get(mark, set()))
            if not keys and nh not in self._unkeyable:
                self._unkeyable.add(nh)
                _log("nexthop-not-pinnable", nexthop=str(nh), reason="v4-via-v6-needs-/32-vip")
            for key in keys:
                want_elems[key] = mark

        # additions in dependency order: table routes, rules, then nft (records new pins)
        tables = set(plan.rules) | {r.table for r in self._rules_now()}
        have_routes = set(self.nl.owned_routes(tables))
        want_routes: dict[tuple[int, str], NextHop] = {(t, v): nh for t, v, nh in plan.routes}
        for (table, vip), nh in want_routes.items():
            if not any(
                r.table == table and r.dst == vip and r.gateway == nh.gateway for r in have_routes
            ):
                try:
                    self.nl.replace_route(table, vip, nh)
                except Exception as exc:
                    _log("route-failed", table=table, vip=vip, nexthop=str(nh), error=repr(exc))
        have_rules = self._rules_now()
        have_keys = {(r.family, r.mark) for r in have_rules}
        for mark, fam in plan.rules.items():
            if (fam, mark) not in have_keys:
                try:
                    self.nl.add_rule(fam, mark)
                except Exception as exc:
                    _log("rule-failed", mark=f"0x{mark:08x}", error=repr(exc))
        script = ""
        stale = [k for k, m in self._elements.items() if want_elems.get(k) != m]
        for mapname in ("nh4", "nh6"):
            script += render_elements("delete", mapname, [k for mn, k in stale if mn == mapname])
        fresh = [k for k, m in want_elems.items() if self._elements.get(k) != m]
        for mapname in ("nh4", "nh6"):
            script += render_elements(
                "add",
                mapname,
                [f"{k} : 0x{want_elems[(mn, k)]:08x}" for mn, k in fresh if mn == mapname],
            )
        gone_rel = self._released - plan.released
        new_rel = plan.released - self._released
        script += render_elements("delete", "released", [f"0x{m:08x}" for m in sorted(gone_rel)])
        script += render_elements("add", "released", [f"0x{m:08x}" for m in sorted(new_rel)])
        if script:
            try:
                self.nft.run(script)
                self._elements = dict(want_elems)
                self._released = set(plan.released)
            except NftError as exc:
                _log("nft-failed", error=str(exc))
                self._resync_nft()

        # removals: rules, then routes
        for r in have_rules:
            if plan.rules.get(r.mark) != r.family:
                self.nl.del_rule(r)
        for rt in have_routes:
            want = want_routes.get((rt.table, rt.dst))
            if want is None or want.gateway != rt.gateway:
                self.nl.del_route(rt)

    def _check_direction(self, now: float) -> None:
        """Warn when the VIP traffic looks one-directional (conntrack pins cannot work)."""
        try:
            c = self.nft.counters()
        except Exception as exc:
            _log("direction-probe-failed", error=repr(exc))
            return
        before = self.direction.verdict.suspected
        v = self.direction.observe(now, c.get(PROBE_PACKETS, 0), c.get(PROBE_INVALID, 0))
        if v is None or v.suspected == before:
            return
        if v.suspected:
            log.warning(
                "one-direction-suspected packets=%d invalid=%d warnings=%d hint=%s",
                v.packets,
                v.invalid,
                v.warnings,
                "conntrack sees no replies (direct server return or an asymmetric return"
                " path?): pins in conntrack do not apply; run with --one-direction",
            )
        else:
            _log("one-direction-cleared", packets=v.packets, invalid=v.invalid)

    def _rules_now(self) -> list[OwnedRule]:
        return self.nl.owned_rules()

    def _resync_nft(self) -> None:
        self._elements = {}
        for mapname in ("nh4", "nh6"):
            for key, value in self.nft.map_elements(mapname):
                if isinstance(key, list) and len(key) == 2:
                    self._elements[(mapname, f'"{key[0]}" . {key[1]}')] = int(value)
        self._released = {int(m) for m in self.nft.set_elements("released") if isinstance(m, int)}

    def _save(self) -> None:
        data = {
            "version": 1,
            "vips": [str(v) for v in self.cfg.vips],
            "mode": "map" if self.cfg.pin_maps else "kernel",
            "one_direction": self.cfg.one_direction,
            "direction": self.direction.verdict.to_json(),
            "marks": self.planner.marks.to_json(),
            "nexthops": {
                nh.key(): {"vips": sorted(rec.vips)} for nh, rec in self.planner.records.items()
            },
            "status": self.planner.status(),
            "updated": time.time(),
        }
        try:
            state.save(self.cfg.state_dir, data)
        except OSError as exc:
            _log("state-save-failed", error=repr(exc))

    def resolve_mark(self, family: int, nexthop: str | NextHop) -> int | None:
        """Mark of an ECMP member (for map mode): ``nexthop`` is a gateway address,
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

    # ── the loop ────────────────────────────────────────────────────────────────
    def run(self, on_reconcile: Callable[[LinuxDatapath], None] | None = None) -> None:
        events = RouteEvents()
        try:
            self.reconcile(force_count=True)
            next_periodic = self.clock() + self.cfg.reconcile_interval
            while not self.stop_event.is_set():
                timeout = min(next_periodic - self.clock(), 0.5)
                changed = events.wait(timeout)
                if changed:
                    time.sleep(0.05)  # debounce bursts (multipath route replace = several msgs)
                    events.wait(0)
                periodic = self.clock() >= next_periodic
                if changed or periodic:
                    self.reconcile(force_count=periodic)
                    if periodic:
                        next_periodic = self.clock() + self.cfg.reconcile_interval
                    if on_reconcile is not None:
                        on_reconcile(self)
        finally:
            events.close()
            _log("stop", nexthops=len(self.planner.records))

    def stop(self) -> None:
        self.stop_event.set()

    def close(self) -> None:
        self.nl.close()


# ── status and cleanup (separate processes, no running agent needed) ─────────────
def count_flow_pins(nft: Nft) -> dict[int, int]:
    """mark → elements of the one-direction flow maps (``flow4``/``flow6``) carrying it.

    A full listing: fine for tens of thousands of flows, about 47 s at a million (field
    notes), so the agent only counts while a next hop waits for its pins to drain."""
    counts: dict[int, int] = {}
    for mapname in ("flow4", "flow6"):
        for _key, value in nft.map_elements(mapname):
            if isinstance(value, int) and is_dfagent_mark(value):
                counts[value] = counts.get(value, 0) + 1
    return counts


def _unique_by_interface(nh_map: dict[NextHop, int]) -> dict[tuple[int, str], int]:
    """(family, ifname) → mark where that interface has one next hop of the family."""
    seen: dict[tuple[int, str], list[int]] = {}
    for nh, mark in nh_map.items():
        seen.setdefault((nh.family, nh.ifname), []).append(mark)
    return {key: marks[0] for key, marks in seen.items() if len(marks) == 1}


def status(state_dir: str, count: bool = True) -> dict[str, Any]:
    st = state.load(state_dir)
    nl = Netlink()
    nft = Nft()
    try:
        rules = nl.owned_rules()
        routes = nl.owned_routes()
        nh_elems = {
            f"{k[0]}%{k[1]}" if isinstance(k, list) else str(k): v
            for mapname in ("nh4", "nh6")
            for k, v in nft.map_elements(mapname)
        }
        released = nft.set_elements("released")
        pinned: dict[int, int] | None = None
        one_direction = bool(st.get("one_direction"))
        if count:
            try:
                pinned = count_flow_pins(nft) if one_direction else conntrack.count_by_mark()
            except Exception:
                pinned = None
        nexthops = []
        for rec in st.get("status", []):
            mark = int(rec["table"])
            rec = dict(rec)
            rec["rule"] = any(r.mark == mark for r in rules)
            rec["routes"] = sorted(r.dst for r in routes if r.table == mark)
            if pinned is not None:
                rec["pinned"] = pinned.get(mark, 0)
            nexthops.append(rec)
        other = (
            {
                f"0x{m:08x}": n
                for m, n in pinned.items()
                if not any(int(x["table"]) == m for x in nexthops)
            }
            if pinned
            else {}
        )
        return {
            "table": nft.table_exists(),
            "vips": st.get("vips", []),
            "mode": st.get("mode"),
            "one_direction": one_direction,
            # conntrack modes: the agent's last verdict, and the kernel's counters since the
            # table was made (TCP packets to the VIPs, and those conntrack called INVALID)
            "direction": {
                **(st.get("direction") or {}),
                "counters": {
                    k: v for k, v in nft.counters().items() if k in (PROBE_PACKETS, PROBE_INVALID)
                },
            },
            "nexthops": nexthops,
            "nft_nexthop_map": nh_elems,
            "released_marks": [f"0x{m:08x}" for m in released if isinstance(m, int)],
            "rules": len(rules),
            "routes": len(routes),
            "pinned_other_marks": other,
            "state_updated": st.get("updated"),
        }
    finally:
        nl.close()


def cleanup(state_dir: str | None, keep_state: bool = False) -> dict[str, int]:
    """Remove dfagent's nft table, ip rules and table routes (recognised by their markers)."""
    nl = Netlink()
    nft = Nft()
    try:
        removed_table = nft.delete_table()
        rules: Iterable[OwnedRule] = nl.owned_rules()
        n_rules = 0
        for r in rules:
            nl.del_rule(r)
            n_rules += 1
        routes: Iterable[OwnedRoute] = nl.owned_routes()
        n_routes = 0
        for rt in routes:
            nl.del_route(rt)
            n_routes += 1
        removed_state = False
        if state_dir and not keep_state:
            removed_state = state.remove(state_dir)
        return {
            "nft_tables": int(removed_table),
            "rules": n_rules,
            "routes": n_routes,
            "state_files": int(removed_state),
        }
    finally:
        nl.close()


def format_status(data: dict[str, Any]) -> str:
    lines = [
        f"nft table inet dfagent: {'present' if data['table'] else 'absent'}"
        f"   mode: {data.get('mode')}   vips: {', '.join(data.get('vips') or []) or '-'}",
        f"rules: {data['rules']}   table routes: {data['routes']}"
        f"   released marks: {', '.join(data['released_marks']) or '-'}",
        f"{'NEXT HOP':34} {'FAM':>3} {'MARK':>10} {'TABLE':>10} {'STATE':8} {'RULE':4} PINNED",
    ]
    for nh in data["nexthops"]:
        lines.append(
            f"{nh['nexthop']:34} {nh['family']:>3} {nh['mark']:>10} {nh['table']:>10}"
            f" {nh['state']:8} {'yes' if nh['rule'] else 'no':4} {nh.get('pinned')}"
        )
    d = data.get("direction") or {}
    if d.get("suspected"):
        lines.append(
            f"WARNING: conntrack sees no replies for the VIPs ({d.get('invalid')} of "
            f"{d.get('packets')} packets INVALID in the last window; {d.get('warnings')} "
            "warnings): the router sees one direction only, run with --one-direction"
        )
    if data.get("pinned_other_marks"):
        lines.append(f"pinned under unknown marks: {json.dumps(data['pinned_other_marks'])}")
    return "\n".join(lines)


__all__ = [
    "DatapathConfig",
    "LinuxDatapath",
    "cleanup",
    "format_status",
    "is_dfagent_mark",
    "status",
]
