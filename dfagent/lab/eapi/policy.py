"""Pins without DirectFlow, as config the test switch keeps: ACLs, PBR class-maps and
policy-maps, traffic-policies, and the interfaces they are applied on.

Platforms without DirectFlow (7280R3/7500R: traffic-policy; cEOS-lab: PBR, field notes) pin
with these. The switch stores and prints them (`show running-config`) and refuses what EOS
would refuse; it does not forward, so nothing here expires or counts packets (EOS has no
idle timeout for them either: the agent ages such pins itself).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dfagent.lab.eapi.directflow import IPAddress, IPNetwork


@dataclass(frozen=True)
class AclRule:
    permit: bool
    proto: str  # ip, ipv6, tcp, udp, icmp or a number
    src: str  # any | host A | A/len
    src_port: int | None
    dst: str
    dst_port: int | None
    flags: tuple[str, ...] = ()  # syn, ack, … (tcp)

    def render(self) -> str:
        words = ["permit" if self.permit else "deny", self.proto, self.src]
        if self.src_port is not None:
            words += ["eq", str(self.src_port)]
        words.append(self.dst)
        if self.dst_port is not None:
            words += ["eq", str(self.dst_port)]
        return " ".join(words + list(self.flags))


@dataclass
class Acl:
    version: int
    rules: dict[int, AclRule] = field(default_factory=dict)

    def next_seq(self) -> int:
        return (max(self.rules) // 10 + 1) * 10 if self.rules else 10


@dataclass
class ClassMap:
    """`class-map type pbr match-any NAME`: the ACLs it matches, (version, acl name)."""

    matches: list[tuple[int, str]] = field(default_factory=list)


@dataclass
class PbrClass:
    name: str
    nexthop: IPAddress | None = None


@dataclass
class PbrPolicy:
    classes: dict[int, PbrClass] = field(default_factory=dict)

    def seq_of(self, name: str) -> int | None:
        for seq, c in self.classes.items():
            if c.name == name:
                return seq
        return None

    def next_seq(self) -> int:
        return (max(self.classes) // 10 + 1) * 10 if self.classes else 10


@dataclass
class TpMatch:
    """One `match NAME ipv4|ipv6` rule of a traffic-policy."""

    name: str
    version: int
    sources: tuple[IPNetwork, ...] = ()
    destinations: tuple[IPNetwork, ...] = ()
    protocol: str | None = None  # tcp, udp, icmp or a number
    sport: int | None = None
    dport: int | None = None
    redirect: IPAddress | None = None
    drop: bool = False
    count: str | None = None


@dataclass
class TrafficPolicy:
    matches: dict[str, TpMatch] = field(default_factory=dict)  # in configuration order


@dataclass
class Interface:
    description: str | None = None
    pbr_input: str | None = None  # service-policy type pbr input P
    traffic_policy_input: str | None = None  # traffic-policy input P


@dataclass
class PolicyConfig:
    acls: dict[tuple[int, str], Acl] = field(default_factory=dict)
    class_maps: dict[str, ClassMap] = field(default_factory=dict)
    pbr: dict[str, PbrPolicy] = field(default_factory=dict)
    traffic_policies: dict[str, TrafficPolicy] = field(default_factory=dict)
    traffic_policies_mode: bool = False  # `traffic-policies` was entered at least once
    interfaces: dict[str, Interface] = field(default_factory=dict)

    def blocks(self) -> list[list[str]]:
        """Running-config blocks, in the order EOS prints these sections."""
        out: list[list[str]] = []
        for name, intf in sorted(self.interfaces.items(), key=lambda kv: _intf_key(kv[0])):
            lines = [f"interface {name}"]
            if intf.description:
                lines.append(f"   description {intf.description}")
            if intf.pbr_input:
                lines.append(f"   service-policy type pbr input {intf.pbr_input}")
            if intf.traffic_policy_input:
                lines.append(f"   traffic-policy input {intf.traffic_policy_input}")
            out.append(lines)
        for (version, name), acl in sorted(self.acls.items()):
            kw = "ip" if version == 4 else "ipv6"
            out.append(
                [f"{kw} access-list {name}"]
                + [f"   {seq} {acl.rules[seq].render()}" for seq in sorted(acl.rules)]
            )
        for name, cm in sorted(self.class_maps.items()):
            lines = [f"class-map type pbr match-any {name}"]
            for i, (version, acl_name) in enumerate(cm.matches):
                kw = "ip" if version == 4 else "ipv6"
                lines.append(f"   {(i + 1) * 10} match {kw} access-group {acl_name}")
            out.append(lines)
        for name, pol in sorted(self.pbr.items()):
            lines = [f"policy-map type pbr {name}"]
            for seq in sorted(pol.classes):
                c = pol.classes[seq]
                lines.append(f"   {seq} class {c.name}")
                if c.nexthop is not None:
                    lines.append(f"      set nexthop {c.nexthop}")
            out.append(lines)
        if self.traffic_policies_mode or self.traffic_policies:
            lines = ["traffic-policies"]
            for name, tp in sorted(self.traffic_policies.items()):
                lines.append(f"   traffic-policy {name}")
                for m in tp.matches.values():
                    lines += ["      " + x for x in _tp_match_lines(m)]
                    lines.append("      !")
                lines += ["      match ipv4-all-default ipv4", "      !"]
                lines += ["      match ipv6-all-default ipv6"]
            out.append(lines)
        return out


def _intf_key(name: str) -> tuple[str, list[int]]:
    head = name.rstrip("0123456789/")
    nums = [int(x) for x in name[len(head) :].split("/") if x.isdigit()]
    return head, nums


def _tp_match_lines(m: TpMatch) -> list[str]:
    out = [f"match {m.name} {'ipv4' if m.version == 4 else 'ipv6'}"]
    if m.sources:
        out.append("   source prefix " + " ".join(str(p) for p in m.sources))
    if m.destinations:
        out.append("   destination prefix " + " ".join(str(p) for p in m.destinations))
    if m.protocol is not None:
        line = f"   protocol {m.protocol}"
        if m.sport is not None:
            line += f" source port {m.sport}"
        if m.dport is not None:
            line += f" destination port {m.dport}"
        out.append(line)
    actions = []
    if m.count:
        actions.append(f"count {m.count}")
    if m.drop:
        actions.append("drop")
    if m.redirect is not None:
        actions.append(f"redirect next-hop {m.redirect}")
    if actions:
        out += ["   !", "   actions"] + ["      " + a for a in actions]
    return out
