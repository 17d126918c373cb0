"""Where next hops come from on a Linux router: the kernel's routing table (rtnetlink).

A VIP is a prefix. It covers every route inside it (``--vip 10.202.0.0/16`` and fifty
anycast /32s announced in it: fifty entries, each with its own ECMP set), and, where no
route equals it, the longest route around it (a /32 VIP routed by a /24, the egress case's
default route) under the VIP's own prefix. A /0 VIP means the default route alone, not the
whole table. Each entry becomes a route in the table of each of its next hops.

:class:`LinuxRoutes` keeps those routes in memory: one kernel-filtered dump of the main
table (unicast routes only) at start, then every rtnetlink notification is applied as it
arrives (:meth:`LinuxRoutes.watch`), so a route change reaches the planner within
milliseconds and a pass with nothing new costs nothing. Links, nexthop objects and lost
notifications (ENOBUFS) make it read the table again: a link going down marks IPv4 hops
dead without any route notification. :attr:`generation` moves whenever what
:meth:`observe` returns may have changed (routes, liveness).

Liveness (link, carrier, neighbour state; the policy is
:class:`dfagent.core.liveness.Liveness`) is read from the same notifications.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Protocol

from dfagent.backends.linux.rtnl import RTNH_F_DEAD, Event, Route, RouteNetlink, RtnlEvents
from dfagent.core.liveness import NUD_FAILED, NUD_GOOD, Liveness
from dfagent.core.marks import RT_PROTO, is_dfagent_table
from dfagent.core.nexthops import IPNetwork, NextHop
from dfagent.core.ports import RouteView


class RouteEvents(Protocol):
    """The subscribed notification socket (``RtnlEvents``): ``overflow`` when some were lost."""

    overflow: bool

    def fileno(self) -> int: ...
    def read(self) -> list[Event]: ...
    def close(self) -> None: ...


WIDTH = {4: 32, 6: 128}
PrefixKey = tuple[int, int, int]  # (family, network as int, length)


class Coverage:
    """Which VIPs a route concerns, by integer prefix arithmetic (no per-VIP loop)."""

    def __init__(self, vips: Iterable[IPNetwork]) -> None:
        self.vips = tuple(vips)
        # inside[fam][L]: VIP network >> (W - L) → VIP, for VIPs of length L
        self.inside: dict[int, dict[int, dict[int, IPNetwork]]] = {4: {}, 6: {}}
        # around[fam][l]: VIP network >> (W - l) → VIPs longer than l (routes of length l
        # that contain them)
        self.around: dict[int, dict[int, dict[int, list[IPNetwork]]]] = {4: {}, 6: {}}
        for v in self.vips:
            w, n, plen = WIDTH[v.version], int(v.network_address), v.prefixlen
            self.inside[v.version].setdefault(plen, {})[n >> (w - plen)] = v
            for length in range(plen):
                self.around[v.version].setdefault(length, {}).setdefault(
                    n >> (w - length), []
                ).append(v)

    def concerns(self, key: PrefixKey) -> tuple[IPNetwork | None, list[IPNetwork]]:
        """(the VIP the route lies in, the VIPs it contains)."""
        fam, n, plen = key
        w = WIDTH[fam]
        within = None
        for length, nets in self.inside[fam].items():
            if length == 0 and plen != 0:
                continue  # a /0 VIP is the default route alone
            if length <= plen and (n >> (w - length)) in nets:
                within = nets[n >> (w - length)]
                break
        around = self.around[fam].get(plen, {}).get(n >> (w - plen), []) if plen < w else []
        return within, [v for v in around if v.prefixlen != 0]


class LinuxRoutes:
    def __init__(self, nl: RouteNetlink) -> None:
        self.nl = nl
        self.liveness = Liveness()
        self._neigh: dict[tuple[int, str], int] = {}
        self._cover = Coverage(())
        # (family, network, length) → priority → next hops (relevant main-table routes)
        self._routes: dict[PrefixKey, dict[int, frozenset[NextHop]]] = {}
        self._nh: dict[tuple[int, int, str], NextHop | None] = {}
        self._texts: dict[PrefixKey, str] = {}
        self._gateways: set[tuple[int, str]] = set()  # (ifindex, address) of any hop seen
        self._need_full = True
        self._view: RouteView | None = None
        self._view_gen = -1
        self.generation = 0
        self.events: RouteEvents | None = None
        # someone else deleted routes in dfagent's tables or its rules (or events were lost):
        # the datapath compares the kernel with what it wrote
        self.tables_touched = False
        self.full_reads = 0

    # ── reading ─────────────────────────────────────────────────────────────────
    def observe(self, vips: Iterable[IPNetwork]) -> RouteView:
        vips = tuple(vips)
        if vips != self._cover.vips:
            self._cover = Coverage(vips)
            self._need_full = True
        if self._need_full or self.events is None:  # not watching: every look is a read
            self.refresh()
        if self._view is None or self._view_gen != self.generation:
            self._view = self._build()
            self._view_gen = self.generation
        return self._view

    def refresh(self) -> None:
        """Read links, neighbours and the main table's unicast routes again (one kernel-
        filtered dump per family the VIPs use)."""
        self._need_full = False
        self.full_reads += 1
        self.nl.refresh_names()
        self._neigh = self.nl.neighbour_states()
        routes: dict[PrefixKey, dict[int, frozenset[NextHop]]] = {}
        for fam in sorted({v.version for v in self._cover.vips}):
            for r in self.nl.main_routes(fam):
                key = _key(r)
                if self._relevant(key):
                    hops = self._hops(r)
                    if hops:
                        routes.setdefault(key, {})[r.priority] = hops
        if routes != self._routes:
            self._routes = routes
        self.generation += 1  # links and neighbours were read again too

    def _relevant(self, key: PrefixKey) -> bool:
        within, around = self._cover.concerns(key)
        return within is not None or bool(around)

    def _hops(self, r: Route) -> frozenset[NextHop]:
        out = []
        for h in r.hops:
            if h.flags & RTNH_F_DEAD or h.gateway is None or not h.oif:
                continue  # dead, or directly connected: nothing to pin to
            ck = (r.family, h.oif, h.gateway)
            nh = self._nh.get(ck)
            if ck not in self._nh:
                nh = NextHop(r.family, self.nl.ifname(h.oif), h.gateway)
                self._nh[ck] = nh
                self._gateways.add((h.oif, nh.gateway))
            if nh is not None:
                out.append(nh)
        return frozenset(out)

    def _build(self) -> RouteView:
        current: dict[str, frozenset[NextHop]] = {}
        best_around: dict[IPNetwork, tuple[int, frozenset[NextHop]]] = {}
        covered: set[IPNetwork] = set()
        for key, by_prio in self._routes.items():
            hops = by_prio[min(by_prio)]
            within, around = self._cover.concerns(key)
            if within is not None:
                current[self._text(key)] = hops  # the same object while unchanged
                covered.add(within)
            for v in around:
                if key[2] > best_around.get(v, (-1, frozenset()))[0]:
                    best_around[v] = (key[2], hops)
        for v, (_len, hops) in best_around.items():
            current.setdefault(str(v), hops)
            covered.add(v)
        unrouted = frozenset(str(v) for v in self._cover.vips if v not in covered)
        return RouteView(current, self.alive, self.generation, unrouted)

    def _text(self, key: PrefixKey) -> str:
        text = self._texts.get(key)
        if text is None:
            text = self._texts[key] = _text(key)
        return text

    def alive(self, nh: NextHop) -> bool:
        idx = self.nl.ifindex(nh.ifname)
        link_ok = idx is not None and self.nl.link_up(nh.ifname)
        state = self._neigh.get((idx, nh.gateway)) if idx is not None else None
        return self.liveness.judge(nh, link_ok, state)

    # ── notifications ───────────────────────────────────────────────────────────
    def watch(self) -> RouteWatch:
        """Subscribe (before the first read, so nothing falls between read and watch)."""
        if self.events is None:
            self.events = RtnlEvents()
            self._need_full = True
        return RouteWatch(self)

    def apply(self, events: list[Event]) -> bool:
        """Apply notifications; True when the next pass has something to look at."""
        changed = False
        for ev in events:
            if ev.kind == "route" and ev.route is not None:
                changed |= self._route_event(ev.route, ev.deleted)
            elif ev.kind == "neigh":
                changed |= self._neigh_event(ev)
            elif ev.kind == "link":
                self.nl.note_link(ev.ifindex, ev.ifname, ev.flags, ev.deleted)
                self._nh.clear()  # an index may now carry another name
                self._need_full = True  # IPv4 marks hops dead without a route notification
                changed = True
            elif ev.kind == "nexthop":
                self._need_full = True  # routes follow their (changed) nexthop objects
                changed = True
            elif ev.kind == "rule" and ev.deleted:
                self.tables_touched = True
                changed = True
        if self.events is not None and self.events.overflow:
            self.events.overflow = False
            self._need_full = self.tables_touched = changed = True
        return changed

    def _route_event(self, r: Route, deleted: bool) -> bool:
        if is_dfagent_table(r.table):
            if deleted and r.protocol == RT_PROTO:
                self.tables_touched = True  # ours, or an admin's: compared at the next pass
                return True
            return False
        if r.table != 254 or r.type != 1:  # the main table's unicast routes only
            return False
        key = _key(r)
        if not self._relevant(key):
            return False
        by_prio = dict(self._routes.get(key, {}))
        hops = self._hops(r)
        if deleted:
            # IPv6 reports a multipath member's removal alone: drop what the message names
            left = by_prio.get(r.priority, frozenset()) - hops if r.hops else frozenset()
            if left:
                by_prio[r.priority] = left
            else:
                by_prio.pop(r.priority, None)
        elif hops:
            by_prio[r.priority] = hops  # a notification carries the whole ECMP set
        else:
            by_prio.pop(r.priority, None)  # now without a gateway: nothing to pin to
        if by_prio == self._routes.get(key, {}):
            return False
        if by_prio:
            self._routes[key] = by_prio
        else:
            self._routes.pop(key, None)
        self.generation += 1
        return True

    def _neigh_event(self, ev: Event) -> bool:
        k = (ev.ifindex, ev.address)
        old = self._neigh.get(k)
        if ev.deleted:
            self._neigh.pop(k, None)
            new = None
        else:
            self._neigh[k] = new = ev.flags
        if k not in self._gateways or _nud_class(old) == _nud_class(new):
            return False  # REACHABLE ↔ STALE ↔ DELAY ↔ PROBE: no news about liveness
        self.generation += 1
        return True

    def close(self) -> None:
        if self.events is not None:
            self.events.close()
            self.events = None


class RouteWatch:
    """The agent's route hints (:class:`dfagent.core.ports.Hints`): readable when rtnetlink
    has news; :meth:`pending` applies it to the route source."""

    def __init__(self, routes: LinuxRoutes) -> None:
        self.routes = routes

    def fileno(self) -> int:
        assert self.routes.events is not None
        return self.routes.events.fileno()

    def pending(self) -> bool:
        ev = self.routes.events
        return ev is not None and self.routes.apply(ev.read())

    def close(self) -> None:
        self.routes.close()


def _nud_class(state: int | None) -> int:
    if state is None:
        return 0
    if state & NUD_FAILED:
        return 1
    return 2 if state & NUD_GOOD else 3


def _key(r: Route) -> PrefixKey:
    return (r.family, int.from_bytes(r.dst, "big") if r.dst_len else 0, r.dst_len)


def _text(key: PrefixKey) -> str:
    fam, n, plen = key
    addr = ipaddress.IPv4Address(n) if fam == 4 else ipaddress.IPv6Address(n)
    return f"{addr}/{plen}"


__all__ = ["Coverage", "LinuxRoutes", "RouteWatch"]
