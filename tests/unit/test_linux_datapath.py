"""LinuxDatapath against fakes that model kernel *state* (nft maps, rules, tables, links)."""

from __future__ import annotations

import ipaddress
import json
import re
import threading
from pathlib import Path
from typing import Any

import pytest

from dfagent.backends.linux.datapath import DatapathConfig, LinuxDatapath
from dfagent.backends.linux.netlink import NUD_FAILED, NetlinkHandle, OwnedRoute, OwnedRule
from dfagent.backends.linux.nft import NftError
from dfagent.backends.linux.rtnl import Event, Hop, Route, RouteOp
from dfagent.core.marks import MARK_BASE, MarkSpace
from dfagent.core.nexthops import NextHop, parse_vip
from dfagent.routes.linux import LinuxRoutes

VIP4 = parse_vip("1.1.1.1/32")
VIP6 = parse_vip("2001:db8::1/128")
S1 = NextHop(4, "r1", "10.0.1.2")
S2 = NextHop(4, "r2", "10.0.2.2")
S1v6 = NextHop(6, "r1", "fe80::2")
M1, M2, M3 = MARK_BASE | 1, MARK_BASE | 2, MARK_BASE | 3
SPACE = MarkSpace()
ELEM = re.compile(r"(add|delete) element inet dfagent (\w+) \{ (.*) \}")


class FakeNft:
    """Models nft state: chains with their rules, the small maps and sets; scripts are
    applied line by line (enough for what the datapath writes)."""

    def __init__(self) -> None:
        self.ruleset: list[dict[str, Any]] = []  # what `list ruleset` adds: other mark users
        self._reset()

    def _reset(self) -> None:
        self.table = False
        self.chains: dict[str, list[str]] = {}
        self.maps: dict[str, dict[str, int]] = {"nh4": {}, "nh6": {}, "restore": {}}
        self.sets: set[str] = set()
        self.released: set[int] = set()
        self.vips: dict[str, set[str]] = {}
        self.scripts: list[str] = []

    def table_exists(self) -> bool:
        return self.table

    def delete_table(self) -> bool:
        had = self.table
        self._reset()
        return had

    def run(self, script: str) -> str:
        self.scripts.append(script)
        for line in script.splitlines():
            words = line.split()
            if line.startswith("add table"):
                self.table = True
            elif line.startswith(("add map", "add set")):
                self.sets.add(words[4])
            elif line.startswith("add chain"):
                self.chains.setdefault(words[4], [])
            elif line.startswith("flush chain"):
                self.chains[words[4]] = []
            elif line.startswith("delete chain"):
                del self.chains[words[4]]
            elif line.startswith("flush map"):
                self.maps[words[4]].clear()
            elif line.startswith("flush set") and words[4] == "released":
                self.released.clear()
            elif line.startswith("flush set"):
                self.vips[words[4]] = set()
            elif line.startswith("add rule"):
                self.chains[words[4]].append(" ".join(words[5:]))
            m = ELEM.fullmatch(line)
            if not m:
                continue
            verb, name, body = m.groups()
            if name.startswith("vip"):
                self.vips.setdefault(name, set()).update(body.split(", "))
                continue
            for elem in body.split(", "):
                if name == "released":
                    (self.released.add if verb == "add" else self.released.discard)(int(elem, 16))
                    continue
                key, _, val = elem.partition(" : ")
                if verb == "add":
                    assert key not in self.maps[name], f"duplicate {key}"
                    self.maps[name][key] = int(val.rsplit("_", 1)[1], 16)
                else:
                    del self.maps[name][key]
        return ""

    def run_json(self, command: str, terse: bool = False) -> list[dict[str, Any]]:
        if command == "list ruleset":
            return list(self.ruleset)
        if not self.table:
            raise NftError(command, 1, "No such file or directory")
        words = command.split()
        if words[1] == "chain":
            return [{"rule": {"chain": words[4], "expr": r}} for r in self.chains[words[4]]]
        out: list[dict[str, Any]] = [{"map": {"name": n}} for n in sorted(self.sets)]
        for c, rules in self.chains.items():
            out.append({"chain": {"name": c}})
            out += [{"rule": {"chain": c, "expr": r}} for r in rules]
        return out

    def table_json(self) -> list[dict[str, Any]]:
        return self.run_json("list table inet dfagent", terse=True)

    def map_elements(self, name: str) -> list[tuple[Any, Any]]:
        out: list[tuple[Any, Any]] = []
        kind = "res" if name == "restore" else "rec"
        for key, slot in self.maps[name].items():
            value = {"jump": {"target": f"{kind}_{slot:08x}"}}
            if name == "restore":
                out.append((int(key, 16), value))
                continue
            ifname, addr = key.split(" . ")
            out.append(([ifname.strip('"'), addr], value))
        return out

    def set_elements(self, name: str) -> list[Any]:
        if name == "released":
            return sorted(self.released)
        return sorted(self.vips.get(name, ()))

    def counters(self) -> dict[str, int]:
        return {}  # no traffic: the one-direction probe never judges


class FakeNetlink:
    def __init__(self) -> None:
        self.ecmp: dict[str, set[NextHop]] = {}
        self.down: set[str] = set()
        self.neigh: dict[tuple[int, str], int] = {}
        self.rules: set[OwnedRule] = set()
        self.routes: set[OwnedRoute] = set()
        self.index = {"r1": 1, "r2": 2}
        self.applied: list[RouteOp] = []  # every op apply_routes was given

    def refresh_names(self) -> None:
        pass

    def note_link(self, index: int, name: str, flags: int, deleted: bool) -> None:
        pass

    def main_routes(self, family: int) -> list[Route]:
        """The main table as the kernel would dump it: one route per ``ecmp`` prefix."""
        out = []
        for prefix, nhs in self.ecmp.items():
            net = ipaddress.ip_network(prefix)
            if net.version != family:
                continue
            hops = tuple(Hop(nh.gateway, self.index[nh.ifname]) for nh in sorted(nhs))
            out.append(Route(family, 254, net.network_address.packed, net.prefixlen, 186, 1,
                             20, hops))  # fmt: skip
        return out

    def ifname(self, index: int) -> str:
        return {i: n for n, i in self.index.items()}[index]

    def ifindex(self, name: str) -> int | None:
        return self.index.get(name)

    def route_ifname(self, addr: str) -> str | None:
        """Next hops are on-link: the interface of the one with that address."""
        found = {nh.ifname for nhs in self.ecmp.values() for nh in nhs if nh.gateway == addr}
        return min(found) if found else None

    def link_up(self, name: str) -> bool:
        return name not in self.down

    def neighbour_states(self) -> dict[tuple[int, str], int]:
        return dict(self.neigh)

    def owned_rules(self) -> list[OwnedRule]:
        return sorted(self.rules, key=lambda r: r.mark)

    def add_rule(self, fam: int, mark: int, mask: int, table: int) -> None:
        self.rules.add(OwnedRule(fam, mark, table, 9000, mask))

    def fwmark_rules(self) -> list[tuple[int, int, int, int]]:
        return []

    def del_rule(self, rule: OwnedRule) -> None:
        self.rules.discard(rule)

    def owned_routes(self, tables: Any = None) -> list[OwnedRoute]:
        return [r for r in self.routes if tables is None or r.table in set(tables)]

    def route_op(self, table: int, dst: str, nh: NextHop) -> RouteOp:
        return RouteOp(4 if "." in dst else 6, table, dst, nh.gateway, self.index[nh.ifname])

    def apply_routes(self, ops: Any) -> list[tuple[RouteOp, int]]:
        for op in ops:
            self.applied.append(op)
            self.routes = {r for r in self.routes if (r.table, r.dst) != (op.table, op.dst)}
            if not op.delete:
                name = self.ifname(op.oif)
                self.routes.add(OwnedRoute(op.family, op.table, op.dst, op.gateway, name))
        return []

    def del_route(self, route: OwnedRoute) -> None:
        self.routes.discard(route)

    def close(self) -> None:
        pass


class QuietEvents:
    """A subscribed notification socket nothing arrives on (the route source is watching:
    no re-read per reconcile)."""

    overflow = False

    def fileno(self) -> int:
        return -1  # never polled

    def read(self) -> list[Event]:
        return []

    def close(self) -> None:
        pass


class Kernel:
    def __init__(self, tmp: Path) -> None:
        self.nft = FakeNft()
        self.nl = FakeNetlink()
        self.t = 0.0
        self.pins: dict[int, int] = {}
        self.state_dir = str(tmp / "state")
        self.routes: LinuxRoutes | None = None  # the route source of the last agent()

    def _routes(self, nl: NetlinkHandle) -> LinuxRoutes:
        self.routes = LinuxRoutes(nl)
        return self.routes

    def agent(self, **kw: Any) -> LinuxDatapath:
        cfg = DatapathConfig(
            (VIP4, VIP6), state_dir=self.state_dir, reconcile_interval=1, gc_grace=2, **kw
        )
        dp = LinuxDatapath(
            cfg,
            routes=self._routes,  # the real route source, over the fake netlink
            nft=self.nft,
            nl=self.nl,
            clock=lambda: self.t,
            count_pins=lambda: dict(self.pins),
        )
        dp.start()
        return dp

    def released(self) -> set[int]:
        """Slots whose marks are in the released set."""
        return {SPACE.slot(m) or 0 for m in self.nft.released}

    def rules(self) -> set[int]:
        """Tables (= slots) with an ip rule."""
        return {r.table for r in self.nl.rules}


def test_kernel_mode_lifecycle(tmp_path: Path) -> None:
    k = Kernel(tmp_path)
    k.nl.ecmp = {str(VIP4): {S1, S2}, str(VIP6): {S1v6}}
    dp = k.agent()
    dp.reconcile(force_count=True)
    assert k.nft.maps["nh4"] == {'"r1" . 10.0.1.2': M1, '"r2" . 10.0.2.2': M2}
    assert k.nft.maps["nh6"] == {'"r1" . fe80::2': M3}
    assert k.rules() == {M1, M2, M3}
    assert {(r.table, r.dst, r.gateway, r.ifname) for r in k.nl.routes} == {
        (M1, "1.1.1.1/32", "10.0.1.2", "r1"),
        (M2, "1.1.1.1/32", "10.0.2.2", "r2"),
        (M3, "2001:db8::1/128", "fe80::2", "r1"),  # link-local: interface carried
    }
    assert dp.resolve_mark(4, "10.0.2.2") == M2 and dp.resolve_mark(6, "fe80::2%r1") == M3

    # drain S1 while 3 connections are pinned to it
    k.pins = {M1: 3, M2: 1}
    k.nl.ecmp[str(VIP4)] = {S2}
    k.t = 1
    dp.reconcile()
    assert '"r1" . 10.0.1.2' not in k.nft.maps["nh4"]
    assert M1 in k.rules() and any(r.table == M1 for r in k.nl.routes)

    # restart with the state file lost: S1 is adopted from its table, S2 from the nft map
    Path(k.state_dir, "linux-datapath.json").unlink()
    dp = k.agent()
    k.t = 2
    dp.reconcile(force_count=True)
    assert {nh: rec.mark for nh, rec in dp.planner.records.items()} == {S1: M1, S2: M2, S1v6: M3}
    assert M1 in k.rules()

    # pins to S1 end: removed after the grace period, nothing else touched
    k.pins = {M2: 1}
    for t in (3, 4, 5.5):
        k.t = t
        dp.reconcile(force_count=True)
    assert k.rules() == {M2, M3}
    assert all(r.table != M1 for r in k.nl.routes)


def test_dead_nexthop_released(tmp_path: Path) -> None:
    k = Kernel(tmp_path)
    k.nl.ecmp = {str(VIP4): {S1, S2}}
    dp = k.agent()
    dp.reconcile(force_count=True)
    k.pins = {M1: 2, M2: 2}
    k.nl.ecmp[str(VIP4)] = {S2}
    k.nl.neigh[(1, "10.0.1.2")] = NUD_FAILED
    k.t = 1
    dp.reconcile(force_count=True)
    assert k.released() == {M1}
    assert M1 not in k.rules() and all(r.table != M1 for r in k.nl.routes)
    # link of S2 goes down while it is still in the ECMP set
    k.nl.down.add("r2")
    k.t = 2
    dp.reconcile(force_count=True)
    assert k.released() == {M1, M2} and k.nft.maps["nh4"] == {}
    k.nl.down.clear()
    k.nl.neigh[(2, "10.0.2.2")] = 0x02  # REACHABLE again
    k.t = 3
    dp.reconcile(force_count=True)
    assert k.nft.maps["nh4"] == {'"r2" . 10.0.2.2': M2} and M2 in k.rules()
    assert k.released() == {M1}


def test_map_mode_has_pin_maps_and_no_record_rule(tmp_path: Path) -> None:
    k = Kernel(tmp_path)
    k.agent(record=False, pin_maps=True, pin_map_size=1000)
    script = k.nft.scripts[0]
    assert "add map inet dfagent pin4" in script and "size 1000;" in script
    assert "rt ip nexthop" not in script


def test_firewall_reload_is_seen_and_repaired(tmp_path: Path) -> None:
    """`nft flush ruleset` (every Debian firewall reload) deletes the table: check() says
    what is missing, repair() puts back chains, maps and elements as they were."""
    k = Kernel(tmp_path)
    k.nl.ecmp = {str(VIP4): {S1, S2}, str(VIP6): {S1v6}}
    dp = k.agent()
    dp.reconcile(force_count=True)
    assert dp.check() == []
    maps, chains = {n: dict(m) for n, m in k.nft.maps.items()}, dict(k.nft.chains)
    k.nft.delete_table()
    assert dp.check() == ["table"]
    assert dp.check_and_repair()
    assert k.nft.maps == maps and k.nft.chains == chains and dp.check() == []
    assert dp.repairs == 1
    # one chain flushed by hand, then one element deleted: each seen and repaired
    k.nft.chains["prerouting"] = []
    assert dp.check() == ["chain prerouting"]
    dp.check_and_repair()
    del k.nft.maps["nh4"]['"r1" . 10.0.1.2']
    assert dp.check() == ["next-hop maps"]
    dp.check_and_repair()
    assert k.nft.maps == maps and dp.repairs == 3
    state = json.loads(Path(k.state_dir, "linux-datapath.json").read_text())
    assert state["repairs"] == 3 and state["last_repair"]["reason"] == "next-hop maps"


def test_include_file_recreates_the_whole_table(tmp_path: Path) -> None:
    k = Kernel(tmp_path)
    k.nl.ecmp = {str(VIP4): {S1, S2}}
    include = tmp_path / "dfagent.nft"
    dp = k.agent(include_file=str(include))
    dp.reconcile(force_count=True)
    text = include.read_text()
    fresh = FakeNft()
    fresh.run(text)  # what `flush ruleset` + include does: everything from the file alone
    assert fresh.maps == k.nft.maps and fresh.chains == k.nft.chains
    mtime = include.stat().st_mtime_ns
    dp.reconcile(force_count=True)
    assert include.stat().st_mtime_ns == mtime  # rewritten only when it changes


def test_unnumbered_restart_keeps_every_mark(tmp_path: Path) -> None:
    """IPv4 via IPv6 link-local next hops: the nft key is "ifname" . VIP, which names no
    gateway. A restart must not read it as a next hop (that took the mark and re-marked
    the real next hop), and a withdrawn next hop is adopted from its table route."""
    k = Kernel(tmp_path)
    u1, u2 = NextHop(4, "r1", "fe80::2"), NextHop(4, "r2", "fe80::3")
    k.nl.ecmp = {str(VIP4): {u1, u2}}
    dp = k.agent()
    dp.reconcile(force_count=True)
    marks = {nh: rec.mark for nh, rec in dp.planner.records.items()}
    assert k.nft.maps["nh4"] == {'"r1" . 1.1.1.1': marks[u1], '"r2" . 1.1.1.1': marks[u2]}
    k.pins = {marks[u1]: 4, marks[u2]: 4}
    k.nl.ecmp = {str(VIP4): {u2}}  # u1's BGP session drops: withdrawn, pins kept
    k.t = 1
    dp.reconcile(force_count=True)
    for lost_state in (False, True):
        if lost_state:
            Path(k.state_dir, "linux-datapath.json").unlink()
        dp = k.agent()
        k.t += 1
        events = dp.reconcile(force_count=True)
        assert {nh: rec.mark for nh, rec in dp.planner.records.items()} == marks
        assert not [e for e in events if e.kind == "added"], events
        assert dp.planner.records[u1].state == "drained"


def test_state_file_with_wrong_types_loads_what_is_valid(tmp_path: Path) -> None:
    k = Kernel(tmp_path)
    Path(k.state_dir).mkdir(parents=True)
    Path(k.state_dir, "linux-datapath.json").write_text(
        json.dumps(
            {
                "marks": {"4 r1 10.0.1.2": MARK_BASE | 7, "4 r2 10.0.2.2": "x", "junk": 3},
                "nexthops": ["not", "a", "dict"],
                "quarantine": "nope",
            }
        )
    )
    k.nl.ecmp = {str(VIP4): {S1, S2}}
    dp = k.agent()
    dp.reconcile(force_count=True)
    assert dp.planner.records[S1].mark == MARK_BASE | 7  # the valid part was kept
    assert dp.planner.records[S2].mark == MARK_BASE | 1


def test_marks_on_live_entries_are_not_reused_after_cleanup(tmp_path: Path) -> None:
    """Entries still carry slot 1 and 2 (a crash, a cleanup): a fresh start reserves them."""
    k = Kernel(tmp_path)
    k.pins = {M1: 3, M2: 1}
    k.nl.ecmp = {str(VIP4): {S1}}
    dp = k.agent()
    dp.reconcile(force_count=True)
    assert dp.planner.records[S1].mark == M3
    assert k.released() == {M1, M2}


def test_the_start_count_runs_beside_the_start_and_only_a_new_mark_waits(
    tmp_path: Path,
) -> None:
    """The start's census (seconds at a million entries) does not hold up the start; the
    first new mark waits for it, so a carried mark is still never handed out."""
    k = Kernel(tmp_path)
    k.pins = {M1: 3}
    k.nl.ecmp = {str(VIP4): {S1}}
    gate = threading.Event()

    def slow_count() -> dict[int, int]:
        assert gate.wait(10)
        return dict(k.pins)

    cfg = DatapathConfig((VIP4,), state_dir=k.state_dir, reconcile_interval=1)
    dp = LinuxDatapath(cfg, routes=LinuxRoutes, nft=k.nft, nl=k.nl,
                       clock=lambda: k.t, count_pins=slow_count)  # fmt: skip
    dp.start()  # returns with the count still running
    first = threading.Thread(target=dp.reconcile, kwargs={"count": False})
    first.start()
    first.join(0.3)
    assert first.is_alive()  # S1 needs a new mark: it waits for the count
    gate.set()
    first.join(10)
    assert dp.planner.records[S1].mark == M2  # M1 is carried: reserved
    assert dp.count_pins() == {M1: 3}  # the start's count, handed to the first count


def test_other_mark_users_overlapping_our_bits_are_refused(tmp_path: Path) -> None:
    from dfagent.backends.linux.datapath import MarkConflict

    k = Kernel(tmp_path)
    rule = {
        "family": "inet",
        "table": "fw",
        "chain": "pre",
        "handle": 4,
        "expr": [{"mangle": {"key": {"meta": {"key": "mark"}},
                             "value": {"|": [{"meta": {"key": "mark"}}, 0x00010000]}}}],
    }  # fmt: skip
    k.nft.ruleset = [{"rule": rule}]
    with pytest.raises(MarkConflict, match=r"inet fw chain pre .*0x00010000"):
        k.agent()
    assert not k.nft.table  # nothing installed
    k.agent(allow_mark_overlap=True)
    assert k.nft.table


def test_counts_census_rarely_and_waiting_slots_alone(tmp_path: Path) -> None:
    """A census (every slot: seconds at a million entries) runs at most once per 100× its
    duration or 6 intervals; in between only the slots someone waits for are counted."""
    k = Kernel(tmp_path)
    k.nl.ecmp = {str(VIP4): {S1, S2}}
    censuses: list[float] = []
    asked: list[frozenset[int]] = []

    def census() -> dict[int, int]:
        censuses.append(k.t)
        return dict(k.pins)

    def slots(s: frozenset[int]) -> dict[int, int]:
        asked.append(s)
        return {m: k.pins.get(m, 0) for m in s}

    cfg = DatapathConfig((VIP4,), state_dir=k.state_dir, reconcile_interval=1, gc_grace=2)
    dp = LinuxDatapath(cfg, routes=LinuxRoutes, nft=k.nft, nl=k.nl,
                       clock=lambda: k.t, count_pins=census, count_slots=slots)  # fmt: skip
    dp.start()  # the start counts everything (marks carried by unknown entries)
    dp.reconcile(pinned=dp.count_pins())  # the start's census, handed over: no recount
    assert censuses == [0.0] and asked == []
    assert dp.records[S1].pinned == 0 and dp.records[S2].pinned == 0  # known at once
    k.pins = {M1: 5, M2: 7}
    k.t = 1
    assert dp.count_pins() == {} and asked == []  # nothing waits: no count at all
    k.nl.ecmp[str(VIP4)] = {S2}  # S1 drained: its pins are counted, alone, each time
    dp.reconcile(pinned=dp.count_pins())
    assert dp.records[S1].pinned is None  # unknown until counted after it left
    k.t = 2
    dp.reconcile(pinned=dp.count_pins())
    assert asked == [{M1}] and dp.records[S1].pinned == 5
    assert dp.records[S2].pinned == 0  # its census figure, until the next census
    k.t = 6
    dp.reconcile(pinned=dp.count_pins())
    assert censuses == [0.0, 6.0]  # six intervals later, a census again
    assert dp.records[S2].pinned == 7


def test_idle_passes_write_nothing_and_unchanged_tables_are_skipped(tmp_path: Path) -> None:
    k = Kernel(tmp_path)
    k.nl.ecmp = {f"1.1.1.{i}/32": {S1, S2} for i in range(1, 4)}
    dp = k.agent()
    dp.cfg = DatapathConfig(
        tuple(parse_vip(v) for v in ("1.1.1.0/24",)),  # fmt: skip
        state_dir=k.state_dir,
        reconcile_interval=1,
        gc_grace=2,
    )
    src = k.routes
    assert src is not None
    src.events = QuietEvents()
    dp.reconcile()
    assert {(r.table, r.dst) for r in k.nl.routes} == {
        (m, f"1.1.1.{i}/32") for m in (M1, M2) for i in range(1, 4)
    }
    writes = len(k.nft.scripts)
    ops = k.nl.applied
    ops.clear()
    k.t = 1
    assert dp.reconcile() == [] and ops == [] and len(k.nft.scripts) == writes
    # one more route for S2 alone: one table route, S1's table untouched
    src.apply([])
    k.nl.ecmp["1.1.1.9/32"] = {S2}
    src._need_full = True
    dp.reconcile()
    assert [(o.table, o.dst) for o in ops] == [(M2, "1.1.1.9/32")]
    # an admin deletes a table route: told by a notification, written again, counted
    k.nl.routes = {r for r in k.nl.routes if (r.table, r.dst) != (M1, "1.1.1.2/32")}
    src.tables_touched = True
    dp.reconcile()
    assert (M1, "1.1.1.2/32") in {(r.table, r.dst) for r in k.nl.routes}
    assert dp.route_repairs == 1


def test_untrack_waits_for_other_conntrack_users(tmp_path: Path) -> None:
    """Another table's `ct state` rule: nothing untracked (the rendered script has no
    non-VIP notrack); once it is gone, the next full pass untracks and reinstalls."""
    k = Kernel(tmp_path)
    k.nl.ecmp = {str(VIP4): {S1, S2}}
    ct_state = {"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established"]}}
    k.nft.ruleset = [{"rule": {"family": "inet", "table": "fw", "chain": "in", "handle": 2,
                               "expr": [ct_state, {"accept": None}]}}]  # fmt: skip
    dp = k.agent()
    assert not dp.cfg.untrack_others and "inet fw chain in" in dp.ct_users[0]
    assert "saddr != @vip4 notrack" not in dp.include_script()
    dp.reconcile()
    assert not dp.cfg.untrack_others and dp.repairs == 0
    k.nft.ruleset = []
    k.t += 61  # the next full pass (every 60 intervals)
    dp.reconcile()
    assert dp.cfg.untrack_others and dp.repairs == 1
    assert "ip daddr != @vip4 ip saddr != @vip4 notrack" in dp.include_script()
    k.t += 1
    dp.reconcile()  # not a full pass: not checked again
    assert dp.repairs == 1
    assert k.agent(untrack_others=False).cfg.untrack_others is False  # --track-others


def test_syn_guard_refuses_without_loose_tracking(tmp_path: Path) -> None:
    from dfagent.backends.linux.datapath import MarkConflict

    k = Kernel(tmp_path)
    dp = k.agent(syn_untracked=True)
    loose = tmp_path / "loose"
    loose.write_text("0\n")
    with pytest.raises(MarkConflict, match="nf_conntrack_tcp_loose=1"):
        dp.check_syn_guard(str(loose))
    loose.write_text("1\n")
    dp.check_syn_guard(str(loose))
    dp.check_syn_guard(str(tmp_path / "absent"))  # conntrack not loaded: its default applies
