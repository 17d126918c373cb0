"""LinuxDatapath against fakes that model kernel *state* (nft maps, rules, tables, links)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from dfagent.backends.linux.datapath import DatapathConfig, LinuxDatapath
from dfagent.backends.linux.netlink import NUD_FAILED, OwnedRoute, OwnedRule
from dfagent.core.marks import MARK_BASE
from dfagent.core.nexthops import NextHop, parse_vip

VIP4 = parse_vip("1.1.1.1/32")
VIP6 = parse_vip("2001:db8::1/128")
S1 = NextHop(4, "r1", "10.0.1.2")
S2 = NextHop(4, "r2", "10.0.2.2")
S1v6 = NextHop(6, "r1", "fe80::2")
M1, M2, M3 = MARK_BASE | 1, MARK_BASE | 2, MARK_BASE | 3
ELEM = re.compile(r"(add|delete) element inet dfagent (\w+) \{ (.*) \}")


class FakeNft:
    def __init__(self) -> None:
        self.table = False
        self.maps: dict[str, dict[str, int]] = {"nh4": {}, "nh6": {}}
        self.released: set[int] = set()
        self.scripts: list[str] = []

    def table_exists(self) -> bool:
        return self.table

    def run(self, script: str) -> str:
        self.scripts.append(script)
        for line in script.splitlines():
            if line.startswith("add table"):
                self.table = True
            m = ELEM.fullmatch(line)
            if not m:
                continue
            verb, name, body = m.groups()
            if name.startswith("vip"):
                continue
            for elem in body.split(", "):
                if name == "released":
                    (self.released.add if verb == "add" else self.released.discard)(int(elem, 16))
                    continue
                key, _, val = elem.partition(" : ")
                if verb == "add":
                    assert key not in self.maps[name], f"duplicate {key}"
                    self.maps[name][key] = int(val, 16)
                else:
                    del self.maps[name][key]
        return ""

    def map_elements(self, name: str) -> list[tuple[list[Any], int]]:
        out = []
        for key, mark in self.maps[name].items():
            ifname, addr = key.split(" . ")
            out.append(([ifname.strip('"'), addr], mark))
        return out

    def set_elements(self, name: str) -> list[Any]:
        return sorted(self.released)

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

    def refresh_names(self) -> None:
        pass

    def ecmp_set(self, vip: Any) -> set[NextHop]:
        return set(self.ecmp.get(str(vip), set()))

    def ifindex(self, name: str) -> int | None:
        return self.index.get(name)

    def link_up(self, name: str) -> bool:
        return name not in self.down

    def neighbour_states(self) -> dict[tuple[int, str], int]:
        return dict(self.neigh)

    def owned_rules(self) -> list[OwnedRule]:
        return sorted(self.rules, key=lambda r: r.mark)

    def add_rule(self, fam: int, mark: int) -> None:
        self.rules.add(OwnedRule(fam, mark, mark, 9000))

    def del_rule(self, rule: OwnedRule) -> None:
        self.rules.discard(rule)

    def owned_routes(self, tables: Any = None) -> list[OwnedRoute]:
        return [r for r in self.routes if tables is None or r.table in set(tables)]

    def replace_route(self, table: int, vip: str, nh: NextHop) -> None:
        self.routes = {r for r in self.routes if (r.table, r.dst) != (table, vip)}
        self.routes.add(OwnedRoute(4 if "." in vip else 6, table, vip, nh.gateway, nh.ifname))

    def del_route(self, route: OwnedRoute) -> None:
        self.routes.discard(route)

    def close(self) -> None:
        pass


class Kernel:
    def __init__(self, tmp: Path) -> None:
        self.nft = FakeNft()
        self.nl = FakeNetlink()
        self.t = 0.0
        self.pins: dict[int, int] = {}
        self.state_dir = str(tmp / "state")

    def agent(self, **kw: Any) -> LinuxDatapath:
        cfg = DatapathConfig(
            (VIP4, VIP6), state_dir=self.state_dir, reconcile_interval=1, gc_grace=2, **kw
        )
        dp = LinuxDatapath(
            cfg,
            nft=self.nft,  # type: ignore[arg-type]
            nl=self.nl,  # type: ignore[arg-type]
            clock=lambda: self.t,
            count_pins=lambda: dict(self.pins),
        )
        dp.start()
        return dp

    def rules(self) -> set[int]:
        return {r.mark for r in self.nl.rules}


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
    assert k.nft.released == {M1}
    assert M1 not in k.rules() and all(r.table != M1 for r in k.nl.routes)
    # link of S2 goes down while it is still in the ECMP set
    k.nl.down.add("r2")
    k.t = 2
    dp.reconcile(force_count=True)
    assert k.nft.released == {M1, M2} and k.nft.maps["nh4"] == {}
    k.nl.down.clear()
    k.nl.neigh[(2, "10.0.2.2")] = 0x02  # REACHABLE again
    k.t = 3
    dp.reconcile(force_count=True)
    assert k.nft.maps["nh4"] == {'"r2" . 10.0.2.2': M2} and M2 in k.rules()
    assert k.nft.released == {M1}


def test_map_mode_has_pin_maps_and_no_record_rule(tmp_path: Path) -> None:
    k = Kernel(tmp_path)
    k.agent(record=False, pin_maps=True, pin_map_size=1000)
    script = k.nft.scripts[0]
    assert "add map inet dfagent pin4" in script and "size 1000;" in script
    assert "rt ip nexthop" not in script
