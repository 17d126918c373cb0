"""Pins as EOS configuration lines: pure functions, checked against golden files
(tests/eos/golden/).

Three ways to pin a flow, one per switch profile (``pin_method``):

* ``directflow`` (7050X and other Broadcom XGS): one DirectFlow flow per connection, with the
  switch's own idle timeout and packet counter;
* ``traffic-policy`` (7280R3/7500R): one ``match`` rule per connection in a traffic-policy
  applied on the ingress interfaces;
* ``pbr`` (cEOS-lab): one ACL + class per connection in a PBR policy-map.

The last two have no idle timeout: dfagent ages those pins itself (:meth:`PinTable.age`).

A batch is one list of commands from global configuration mode back to it, so one
``runCmds`` request carries many pins. :class:`Batch` remembers which item each command
belongs to, so an error at command *i* (eAPI stops there) names the pin that caused it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from dfagent.core.pintable import Flow

DEFAULT_PRIORITY = 100  # above the 0 of an operator's catch-all flows


@dataclass(frozen=True)
class Item:
    name: str
    flow: Flow
    nexthop: str | None = None  # None: remove


@dataclass
class Batch:
    cmds: list[str] = field(default_factory=list)
    owner: list[int | None] = field(default_factory=list)  # per command: index into items
    items: list[Item] = field(default_factory=list)

    def add(self, lines: Sequence[str], item: Item | None = None) -> None:
        idx = None
        if item is not None:
            self.items.append(item)
            idx = len(self.items) - 1
        self.cmds += lines
        self.owner += [idx] * len(lines)

    def item_at(self, cmd_index: int) -> Item | None:
        if 0 <= cmd_index < len(self.owner):
            i = self.owner[cmd_index]
            return self.items[i] if i is not None else None
        return None


class PinRenderer(Protocol):
    @property
    def method(self) -> str: ...

    def setup(self) -> list[str]: ...
    def batch(self, remove: Sequence[Item], install: Sequence[Item]) -> Batch: ...


def _family(flow: Flow) -> int:
    return ipaddress.ip_address(flow.dst).version


def split_nexthop(nexthop: str) -> tuple[str | None, str | None]:
    """``ADDR``, ``ADDR%IFNAME`` or ``%IFNAME`` → (address, interface)."""
    addr, _, ifname = nexthop.partition("%")
    return (addr or None), (ifname or None)


# ── DirectFlow ──────────────────────────────────────────────────────────────────────────
@dataclass(frozen=True)
class DirectFlowRenderer:
    idle_timeout: int = 300
    priority: int = DEFAULT_PRIORITY
    method: str = "directflow"

    def setup(self) -> list[str]:
        return ["directflow", "no shutdown", "exit"]

    def flow_lines(self, name: str, flow: Flow, nexthop: str) -> list[str]:
        v6 = _family(flow) == 6
        kw = "ipv6" if v6 else "ip"
        addr, ifname = split_nexthop(nexthop)
        action = f"action output nexthop {addr}" if addr else f"action output interface {ifname}"
        return [
            f"flow {name}",
            f"match ethertype {kw}",
            f"match source {kw} {flow.src}",
            f"match destination {kw} {flow.dst}",
            "match ip protocol tcp",
            f"match source port {flow.sport}",
            f"match destination port {flow.dport}",
            action,
            f"priority {self.priority}",
            f"timeout idle {self.idle_timeout}",
            "no persistent",
            "exit",
        ]

    def batch(self, remove: Sequence[Item], install: Sequence[Item]) -> Batch:
        b = Batch()
        b.add(["directflow"])
        for it in remove:
            b.add([f"no flow {it.name}"], it)
        for it in install:
            b.add(self.flow_lines(it.name, it.flow, it.nexthop or ""), it)
        b.add(["exit"])
        return b


# ── traffic-policy ──────────────────────────────────────────────────────────────────────
@dataclass(frozen=True)
class TrafficPolicyRenderer:
    policy: str = "DFAGENT-PINS"
    interfaces: tuple[str, ...] = ()
    method: str = "traffic-policy"

    def setup(self) -> list[str]:
        lines = ["traffic-policies", f"traffic-policy {self.policy}", "exit", "exit"]
        for intf in self.interfaces:
            lines += [f"interface {intf}", f"traffic-policy input {self.policy}", "exit"]
        return lines

    def batch(self, remove: Sequence[Item], install: Sequence[Item]) -> Batch:
        b = Batch()
        b.add(["traffic-policies", f"traffic-policy {self.policy}"])
        for it in remove:
            fam = "ipv6" if _family(it.flow) == 6 else "ipv4"
            b.add([f"no match {it.name} {fam}"], it)
        for it in install:
            f = it.flow
            v6 = _family(f) == 6
            host = 128 if v6 else 32
            addr, _ = split_nexthop(it.nexthop or "")
            b.add(
                [
                    f"match {it.name} {'ipv6' if v6 else 'ipv4'}",
                    f"source prefix {f.src}/{host}",
                    f"destination prefix {f.dst}/{host}",
                    f"protocol tcp source port {f.sport} destination port {f.dport}",
                    "actions",
                    f"redirect next-hop {addr}",
                    "exit",
                    "exit",
                ],
                it,
            )
        b.add(["exit", "exit"])
        return b


# ── PBR ─────────────────────────────────────────────────────────────────────────────────
@dataclass(frozen=True)
class PbrRenderer:
    policy: str = "DFAGENT-PINS"
    interfaces: tuple[str, ...] = ()
    method: str = "pbr"

    def setup(self) -> list[str]:
        lines = [f"policy-map type pbr {self.policy}", "exit"]
        for intf in self.interfaces:
            lines += [f"interface {intf}", f"service-policy type pbr input {self.policy}", "exit"]
        return lines

    def batch(self, remove: Sequence[Item], install: Sequence[Item]) -> Batch:
        b = Batch()
        for it in remove:
            kw = "ipv6" if _family(it.flow) == 6 else "ip"
            b.add(
                [
                    f"policy-map type pbr {self.policy}",
                    f"no class {it.name}",
                    "exit",
                    f"no class-map type pbr match-any {it.name}",
                    f"no {kw} access-list {it.name}",
                ],
                it,
            )
        for it in install:
            f = it.flow
            kw = "ipv6" if _family(f) == 6 else "ip"
            addr, _ = split_nexthop(it.nexthop or "")
            b.add(
                [
                    f"{kw} access-list {it.name}",
                    f"10 permit tcp host {f.src} eq {f.sport} host {f.dst} eq {f.dport}",
                    "exit",
                    f"class-map type pbr match-any {it.name}",
                    f"match {kw} access-group {it.name}",
                    "exit",
                    f"policy-map type pbr {self.policy}",
                    f"class {it.name}",
                    f"set nexthop {addr}",
                    "exit",
                    "exit",
                ],
                it,
            )
        return b


def renderer_for(
    method: str,
    idle_timeout: int,
    priority: int = DEFAULT_PRIORITY,
    policy: str = "DFAGENT-PINS",
    interfaces: Sequence[str] = (),
) -> PinRenderer:
    if method == "directflow":
        return DirectFlowRenderer(idle_timeout, priority)
    if method == "traffic-policy":
        return TrafficPolicyRenderer(policy, tuple(interfaces))
    if method == "pbr":
        return PbrRenderer(policy, tuple(interfaces))
    raise ValueError(f"no EOS renderer for pin method {method!r}")
