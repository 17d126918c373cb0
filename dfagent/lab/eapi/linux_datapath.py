"""The test switch's lab flavour: its DirectFlow flows steer a Linux router's real traffic.

Run where the switch runs (`dfagent lab eapi-switch --datapath linux` on a lab's router). A
programmed flow matching one 5-tuple (host source and destination, protocol, both ports)
with `action output nexthop X` becomes an element of an nft map in its own table,
``inet dfagent_eapi``: 5-tuple → the fwmark of next hop X. One prerouting rule per family
sets the mark from the map; an ip rule per next hop sends that mark to a routing table whose
default route is ``via X``. So a pin written over eAPI decides where the router forwards the
flow, whatever its ECMP routes say, until the flow is deleted or times out on the switch.

Changes are collected per flow and applied in one nft transaction when the eAPI request (or
timeout pass) is over (`flows_done`); a changed flow's element is replaced in the same
transaction. Two flows with the same 5-tuple (two agents pinning one connection) share the
element: the higher priority, then the older flow, steers it (*assumed*; EOS documents only
that priority orders overlapping flows).

Counters are real: each map element carries an nft counter, read back as the flow's
``matchPackets``/``matchBytes`` (so idle timeouts follow the traffic), read at most every
0.5 s. A flow the datapath cannot express (prefixes, missing ports, `action output
interface`, `drop`) is programmed on the switch as before but steers nothing; it is counted
in ``unsupported``.

The table, rules and routing tables are removed by :meth:`close`; :meth:`start` first removes
what a crashed run left. A lab's `down` deletes the router's namespace with all of it.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dfagent.lab.eapi.directflow import FlowConfig, FlowEntry, FlowObserver

if TYPE_CHECKING:
    from dfagent.lab.eapi.linux_mirror import MonitorMirror
    from dfagent.lab.eapi.state import SwitchState

TABLE = "dfagent_eapi"
MARK_SHIFT = 16
MARK_MASK = 0x00FF0000  # 255 next hops; the low 16 bits stay free for anything else
TABLE_BASE = 47100  # routing table of next hop n: TABLE_BASE + n
PREF_BASE = 4700  # its ip rule's preference: PREF_BASE + n
MAX_NEXTHOPS = MARK_MASK >> MARK_SHIFT
COUNTER_MAX_AGE = 0.5  # seconds a counter reading is reused (idle timeouts are seconds)

Key = tuple[int, str, str, int, int, int]  # family, src, dst, proto, sport, dport
RunIp = Callable[[list[str]], subprocess.CompletedProcess[str]]

RULESET = f"""table inet {TABLE} {{
  map flows4 {{
    type ipv4_addr . ipv4_addr . inet_proto . inet_service . inet_service : mark
    counter
  }}
  map flows6 {{
    type ipv6_addr . ipv6_addr . inet_proto . inet_service . inet_service : mark
    counter
  }}
  chain pre {{
    type filter hook prerouting priority mangle; policy accept;
    meta mark set ip saddr . ip daddr . meta l4proto . th sport . th dport map @flows4
    meta mark set ip6 saddr . ip6 daddr . meta l4proto . th sport . th dport map @flows6
  }}
}}
"""


def _run_ip(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *argv], capture_output=True, text=True, timeout=10)


def flow_key(cfg: FlowConfig) -> Key | None:
    """The exact 5-tuple a flow matches, or None if it matches anything wider."""
    src, dst = cfg.src, cfg.dst
    if src is None or dst is None or src.version != dst.version:
        return None
    if src.num_addresses != 1 or dst.num_addresses != 1:
        return None
    if cfg.ip_proto not in (6, 17) or cfg.sport is None or cfg.dport is None:
        return None
    fam = src.version
    return (fam, str(src.network_address), str(dst.network_address), cfg.ip_proto, cfg.sport,
            cfg.dport)  # fmt: skip


@dataclass
class _Owner:
    name: str
    priority: int
    order: int
    mark: int


@dataclass
class DatapathStats:
    installed: int = 0  # flows that became (or share) a map element
    unsupported: int = 0  # programmed flows the datapath cannot express
    transactions: int = 0
    errors: list[str] = field(default_factory=list)


class LinuxDatapath(FlowObserver):
    """A FlowObserver and CounterSource over nftables and policy routing (module doc)."""

    def __init__(self, run_ip: RunIp = _run_ip, nft: Any = None) -> None:
        """``nft``: a libnftables handle (``cmd``, ``set_json_output``); unit tests fake it."""
        if nft is None:
            import nftables  # the lab flavour only: the plain test switch needs no nftables

            nft = nftables.Nftables()
            nft.set_handle_output(False)
        self._nft = nft
        self._run_ip = run_ip
        self.marks: dict[str, int] = {}  # next-hop address → mark
        self._owners: dict[Key, list[_Owner]] = {}
        self._by_name: dict[str, Key] = {}
        self._elements: dict[Key, int] = {}  # what the maps hold now: key → mark
        self._dirty: set[Key] = set()
        self._counters: tuple[float, dict[Key, tuple[int, int]]] | None = None
        self.stats = DatapathStats()
        self.mirror: MonitorMirror | None = None  # set by attach: the monitor sessions

    # ── life ────────────────────────────────────────────────────────────────────────
    def start(self) -> LinuxDatapath:
        """Remove a crashed run's leftovers, then create the table (raises RuntimeError)."""
        self.cleanup()
        self._nft_run(RULESET)
        return self

    def close(self) -> None:
        if self.mirror is not None:
            self.mirror.close()
            self.mirror = None
        self.cleanup()
        self.marks.clear()
        self._owners.clear()
        self._by_name.clear()
        self._elements.clear()

    def cleanup(self) -> None:
        """The table, the ip rules in our preference range and their routing tables."""
        self._nft.cmd(f"delete table inet {TABLE}")  # absent: nothing to do
        for fam in ("-4", "-6"):
            out = self._run_ip([fam, "-j", "rule", "show"]).stdout
            for rule in json.loads(out or "[]"):
                pref = int(rule.get("priority", 0))
                if PREF_BASE < pref <= PREF_BASE + MAX_NEXTHOPS:
                    table = str(TABLE_BASE + pref - PREF_BASE)
                    self._run_ip([fam, "rule", "del", "pref", str(pref)])
                    self._run_ip([fam, "route", "flush", "table", table])

    # ── FlowObserver ────────────────────────────────────────────────────────────────
    def flow_installed(self, entry: FlowEntry) -> None:
        cfg = entry.config
        key = flow_key(cfg)
        if key is None or cfg.nexthop is None or cfg.drop or cfg.out_interfaces:
            self.stats.unsupported += 1
            return
        mark = self._mark(str(cfg.nexthop))
        if mark is None:
            self.stats.unsupported += 1
            return
        self._owners.setdefault(key, []).append(_Owner(cfg.name, cfg.priority, entry.order, mark))
        self._by_name[cfg.name] = key
        self._dirty.add(key)
        self.stats.installed += 1

    def flow_removed(self, entry: FlowEntry, reason: str) -> None:
        self._forget(entry.name)

    def flow_expired(self, entry: FlowEntry, reason: str) -> None:
        self._forget(entry.name)

    def flows_done(self) -> None:
        if not self._dirty:
            return
        lines: list[str] = []
        changed: dict[Key, int | None] = {}
        for key in sorted(self._dirty):
            want, have = self._steering(key), self._elements.get(key)
            if want == have:
                continue
            m, elem = f"inet {TABLE} flows{key[0]}", _elem(key)
            if have is not None:
                lines.append(f"delete element {m} {{ {elem} }}")
            if want is not None:
                lines.append(f"add element {m} {{ {elem} : {want:#x} }}")
            changed[key] = want
        self._dirty.clear()
        if not lines:
            return
        try:
            self._nft_run("\n".join(lines) + "\n")
        except RuntimeError as exc:  # keep serving eAPI; the failure is visible
            self._note(str(exc))
            self._elements = self._read_elements()
            return
        self.stats.transactions += 1
        for key, mark in changed.items():
            if mark is None:
                self._elements.pop(key, None)
            else:
                self._elements[key] = mark

    # ── CounterSource ───────────────────────────────────────────────────────────────
    def read(self, names: list[str]) -> dict[str, tuple[int, int]]:
        """Each flow's element counters; a flow sharing an element but not steering it, or
        not in the datapath, is left out (the switch keeps its own count)."""
        counts = self._read_counters()
        out: dict[str, tuple[int, int]] = {}
        for name in names:
            key = self._by_name.get(name)
            if key is None or key not in counts:
                continue
            owners = self._owners.get(key, [])
            if owners and _best(owners).name == name:
                out[name] = counts[key]
        return out

    # ── internals ───────────────────────────────────────────────────────────────────
    def _forget(self, name: str) -> None:
        key = self._by_name.pop(name, None)
        if key is None:
            return
        owners = [o for o in self._owners.get(key, []) if o.name != name]
        if owners:
            self._owners[key] = owners
        else:
            self._owners.pop(key, None)
        self._dirty.add(key)

    def _steering(self, key: Key) -> int | None:
        owners = self._owners.get(key)
        return _best(owners).mark if owners else None

    def _mark(self, nexthop: str) -> int | None:
        """The mark of a next hop; its ip rule and routing table are made on first use."""
        if nexthop in self.marks:
            return self.marks[nexthop]
        n = len(self.marks) + 1
        if n > MAX_NEXTHOPS:
            self._note(f"more than {MAX_NEXTHOPS} next hops: {nexthop} not steered")
            return None
        fam = f"-{ipaddress.ip_address(nexthop).version}"
        mark, table, pref = n << MARK_SHIFT, str(TABLE_BASE + n), str(PREF_BASE + n)
        route = self._run_ip([fam, "route", "replace", "default", "via", nexthop, "table", table])
        if route.returncode != 0:  # not reachable from here: the flow follows the FIB
            self._note(f"next hop {nexthop}: {route.stderr.strip()}")
        self._run_ip([fam, "rule", "del", "pref", pref])  # a leftover of a crashed run
        rule = self._run_ip([fam, "rule", "add", "fwmark", f"{mark:#x}/{MARK_MASK:#x}",
                             "lookup", table, "pref", pref])  # fmt: skip
        if rule.returncode != 0:
            self._note(f"ip rule for {nexthop}: {rule.stderr.strip()}")
        self.marks[nexthop] = mark
        return mark

    def _nft_run(self, script: str) -> None:
        rc, _, err = self._nft.cmd(script)
        if rc != 0:
            raise RuntimeError(f"nft: {err.strip()}")

    def _list(self) -> list[dict[str, Any]]:
        self._nft.set_json_output(True)
        try:
            rc, out, _ = self._nft.cmd(f"list table inet {TABLE}")
        finally:
            self._nft.set_json_output(False)
        return list(json.loads(out).get("nftables", [])) if rc == 0 and out else []

    def _map_items(self) -> list[tuple[Key, int, tuple[int, int]]]:
        items = []
        for obj in self._list():
            m = obj.get("map")
            if not m or m.get("name") not in ("flows4", "flows6"):
                continue
            fam = 4 if m["name"] == "flows4" else 6
            for raw_key, mark in m.get("elem", []):
                inner = raw_key.get("elem", raw_key) if isinstance(raw_key, dict) else raw_key
                counter = inner.get("counter", {}) if isinstance(inner, dict) else {}
                parts = inner["val"]["concat"] if "val" in inner else inner["concat"]
                src, dst, proto, sport, dport = parts
                proto = {"tcp": 6, "udp": 17}.get(proto, proto)
                key: Key = (fam, _norm(src), _norm(dst), int(proto), int(sport), int(dport))
                pkts = (int(counter.get("packets", 0)), int(counter.get("bytes", 0)))
                items.append((key, int(mark), pkts))
        return items

    def _read_counters(self) -> dict[Key, tuple[int, int]]:
        """At most one read per ``COUNTER_MAX_AGE``: the switch syncs counters before every
        show command, and an eAPI request of 200 `show load-balance` commands would otherwise
        list the maps 200 times (seconds under the switch's lock, the clients timing out)."""
        now = time.monotonic()
        if self._counters is None or now - self._counters[0] >= COUNTER_MAX_AGE:
            self._counters = (now, {key: pkts for key, _, pkts in self._map_items()})
        return self._counters[1]

    def _read_elements(self) -> dict[Key, int]:
        return {key: mark for key, mark, _ in self._map_items()}

    def elements(self) -> dict[Key, int]:
        """The map elements as nftables holds them (tests, benches)."""
        return self._read_elements()

    def _note(self, msg: str) -> None:
        self.stats.errors.append(msg)
        print(f"eapi-switch datapath: {msg}", file=sys.stderr, flush=True)


def _best(owners: Sequence[_Owner]) -> _Owner:
    return min(owners, key=lambda o: (-o.priority, o.order))


def _norm(addr: str) -> str:
    return str(ipaddress.ip_address(addr))


def _elem(key: Key) -> str:
    _, src, dst, proto, sport, dport = key
    return f"{src} . {dst} . {proto} . {sport} . {dport}"


def attach(state: SwitchState, vtysh: Sequence[str] | None = None) -> LinuxDatapath:
    """The lab flavour on ``state``: a started datapath following its flow table and feeding
    its counters, routing answers from this host (``vtysh``: FRR, for IPv6 next hops), and
    the monitor sessions' GRE mirrors sent from it (``dp.mirror``; ``close`` stops them)."""
    from dfagent.lab.eapi.lab_providers import LinuxProviders
    from dfagent.lab.eapi.linux_mirror import MonitorMirror

    dp = LinuxDatapath().start()
    state.add_observer(dp)
    state.set_counter_source(dp)
    state.set_providers(LinuxProviders(state.static, vtysh))
    dp.mirror = MonitorMirror(state)
    state.add_observer(dp.mirror)
    return dp
