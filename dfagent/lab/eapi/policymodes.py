"""CLI modes for pins without DirectFlow: `ip|ipv6 access-list`, `class-map type pbr`,
`policy-map type pbr`, `interface`, `traffic-policies` (data in `policy.py`)."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from dfagent.lab.eapi.modebase import Mode
from dfagent.lab.eapi.policy import (
    Acl,
    AclRule,
    ClassMap,
    Interface,
    PbrClass,
    PbrPolicy,
    TpMatch,
    TrafficPolicy,
)
from dfagent.lab.eapi.tokens import CommandError, Tokens, incomplete

if TYPE_CHECKING:
    from dfagent.lab.eapi.modes import Session

_TCP_FLAGS = ("syn", "ack", "fin", "rst", "psh", "urg", "established")


def config_command(word: str, negate: bool, t: Tokens, s: Session) -> Mode | None:
    """Global config commands of this module; `word` is the first keyword, already read."""
    pol = s.state.policy
    if word in ("ip", "ipv6"):  # `ip access-list NAME` (prefix-lists are handled by the caller)
        version = 4 if word == "ip" else 6
        name = t.name()
        t.end()
        if negate:
            pol.acls.pop((version, name), None)
            return None
        pol.acls.setdefault((version, name), Acl(version))
        return AclMode((version, name))
    if word == "class-map":
        t.keyword("type")
        t.keyword("pbr")
        t.keyword("match-any")
        name = t.name()
        t.end()
        if negate:
            pol.class_maps.pop(name, None)
            return None
        pol.class_maps.setdefault(name, ClassMap())
        return ClassMapMode(name)
    if word == "policy-map":
        t.keyword("type")
        t.keyword("pbr")
        name = t.name()
        t.end()
        if negate:
            pol.pbr.pop(name, None)
            return None
        pol.pbr.setdefault(name, PbrPolicy())
        return PolicyMapMode(name)
    if word == "interface":
        name = t.interface()
        t.end()
        if negate:
            pol.interfaces.pop(name, None)
            return None
        pol.interfaces.setdefault(name, Interface())
        return InterfaceMode(name)
    # traffic-policies
    t.end()
    if negate:
        pol.traffic_policies.clear()
        pol.traffic_policies_mode = False
        return None
    pol.traffic_policies_mode = True
    return TrafficPoliciesMode()


def _endpoint(t: Tokens, version: int) -> str:
    if t.accept("any"):
        return "any"
    if t.accept("host"):
        return f"host {t.address(version)}"
    word = t.peek()
    if word is None:
        raise incomplete()
    if "/" not in word:
        raise t.invalid()
    return str(t.prefix(version))


class AclMode(Mode):
    """`[SEQ] permit|deny PROTO SRC [eq P] DST [eq P] [tcp flags]`, `no SEQ`."""

    def __init__(self, key: tuple[int, str]) -> None:
        self.key = key

    def knows(self, t: Tokens) -> bool:
        start = t.pos
        try:
            t.accept("no", "default")
            word = t.peek()
            return word is not None and (word.isdigit() or word.lower() in ("permit", "deny"))
        finally:
            t.pos = start

    def handle(self, t: Tokens, s: Session) -> Mode | None:
        acl = s.state.policy.acls[self.key]
        negate = t.accept("no", "default") is not None
        seq = t.integer(1, 4294967295) if (t.peek() or "").isdigit() else None
        if negate and seq is not None and not t:
            acl.rules.pop(seq, None)
            return None
        rule = self._rule(t, acl.version)
        if negate:
            for k, r in list(acl.rules.items()):
                if r == rule:
                    del acl.rules[k]
            return None
        if seq is not None and seq in acl.rules and acl.rules[seq] != rule:
            raise CommandError(1002, f"Duplicate sequence number {seq}")
        acl.rules[seq if seq is not None else acl.next_seq()] = rule
        return None

    @staticmethod
    def _rule(t: Tokens, version: int) -> AclRule:
        permit = t.keyword("permit", "deny") == "permit"
        family = "ip" if version == 4 else "ipv6"
        proto: str | None = t.accept(family, "tcp", "udp", "icmp")
        if proto is None:
            proto = str(t.integer(0, 255))
        ports = proto in ("tcp", "udp")
        src = _endpoint(t, version)
        sport = t.integer(0, 65535) if ports and t.accept("eq") else None
        dst = _endpoint(t, version)
        dport = t.integer(0, 65535) if ports and t.accept("eq") else None
        flags: list[str] = []
        while proto == "tcp" and t:
            flags.append(t.keyword(*_TCP_FLAGS))
        t.end()
        return AclRule(permit, proto, src, sport, dst, dport, tuple(flags))


class ClassMapMode(Mode):
    KEYWORDS = ("match",)
    NO_KEYWORDS = KEYWORDS

    def __init__(self, name: str) -> None:
        self.name = name

    def handle(self, t: Tokens, s: Session) -> Mode | None:
        cm = s.state.policy.class_maps[self.name]
        negate = t.accept("no", "default") is not None
        t.keyword("match")
        version = 4 if t.keyword("ip", "ipv6") == "ip" else 6
        t.keyword("access-group")
        acl = t.name()
        t.end()
        entry = (version, acl)
        if negate:
            cm.matches = [m for m in cm.matches if m != entry]
        elif entry not in cm.matches:
            cm.matches.append(entry)
        return None


class PolicyMapMode(Mode):
    """`[SEQ] class NAME` (a sub-mode), `no [SEQ] class NAME`, `no SEQ`."""

    def __init__(self, name: str) -> None:
        self.name = name

    def knows(self, t: Tokens) -> bool:
        start = t.pos
        try:
            t.accept("no", "default")
            if (t.peek() or "").isdigit():
                return True
            return t.accept("class") is not None
        finally:
            t.pos = start

    def handle(self, t: Tokens, s: Session) -> Mode | None:
        pol = s.state.policy.pbr[self.name]
        negate = t.accept("no", "default") is not None
        seq = t.integer(1, 4294967295) if (t.peek() or "").isdigit() else None
        if negate and seq is not None and not t:
            pol.classes.pop(seq, None)
            return None
        t.keyword("class")
        name = t.name()
        t.end()
        have = pol.seq_of(name)
        if negate:
            if have is not None:
                del pol.classes[have]
            return None
        if have is None:
            at = seq if seq is not None else pol.next_seq()
            if at in pol.classes:
                raise CommandError(1002, f"Sequence number {at} is already in use")
            pol.classes[at] = PbrClass(name)
            have = at
        return PbrClassMode(pol.classes[have])


class PbrClassMode(Mode):
    KEYWORDS = ("set",)
    NO_KEYWORDS = KEYWORDS

    def __init__(self, cls: PbrClass) -> None:
        self.cls = cls

    def handle(self, t: Tokens, s: Session) -> Mode | None:
        negate = t.accept("no", "default") is not None
        t.keyword("set")
        t.keyword("nexthop")
        t.accept("recursive")
        addr = None if negate and not t else t.address()
        t.end()
        self.cls.nexthop = None if negate else addr
        return None


class InterfaceMode(Mode):
    KEYWORDS = ("description", "service-policy", "traffic-policy")
    NO_KEYWORDS = KEYWORDS

    def __init__(self, name: str) -> None:
        self.name = name

    def handle(self, t: Tokens, s: Session) -> Mode | None:
        intf = s.state.policy.interfaces[self.name]
        negate = t.accept("no", "default") is not None
        word = t.keyword(*self.KEYWORDS)
        if word == "description":
            text = " ".join(t.words[t.pos :])
            if not text and not negate:
                raise incomplete()
            t.pos = len(t.words)
            intf.description = None if negate else text
            return None
        if word == "service-policy":
            t.keyword("type")
            t.keyword("pbr")
        t.keyword("input")
        name = None if negate and not t else t.name()
        t.end()
        if word == "service-policy":
            intf.pbr_input = None if negate else name
        else:
            intf.traffic_policy_input = None if negate else name
        return None


class TrafficPoliciesMode(Mode):
    KEYWORDS = ("traffic-policy",)
    NO_KEYWORDS = KEYWORDS

    def handle(self, t: Tokens, s: Session) -> Mode | None:
        pols = s.state.policy.traffic_policies
        negate = t.accept("no", "default") is not None
        t.keyword("traffic-policy")
        name = t.name()
        t.end()
        if negate:
            pols.pop(name, None)
            return None
        pols.setdefault(name, TrafficPolicy())
        return TrafficPolicyMode(name)


class TrafficPolicyMode(Mode):
    KEYWORDS = ("match",)
    NO_KEYWORDS = KEYWORDS

    def __init__(self, name: str) -> None:
        self.name = name

    def handle(self, t: Tokens, s: Session) -> Mode | None:
        tp = s.state.policy.traffic_policies[self.name]
        negate = t.accept("no", "default") is not None
        t.keyword("match")
        name = t.name()
        if name in ("ipv4-all-default", "ipv6-all-default"):
            raise CommandError(1002, f"{name} is a reserved match name")
        fam = t.accept("ipv4", "ipv6")
        if fam is None and not negate:
            raise incomplete() if not t else t.invalid()
        t.end()
        version = 4 if fam == "ipv4" else 6
        if negate:
            m = tp.matches.get(name)
            if m is not None and (fam is None or m.version == version):
                del tp.matches[name]
            return None
        m = tp.matches.get(name)
        if m is not None and m.version != version:
            raise CommandError(1002, f"match {name} is of the other address family")
        if m is None:
            m = tp.matches[name] = TpMatch(name, version)
        return TpMatchMode(tp, name)


class TpMatchMode(Mode):
    KEYWORDS = ("source", "destination", "protocol", "actions")
    NO_KEYWORDS = ("source", "destination", "protocol")

    def __init__(self, tp: TrafficPolicy, name: str) -> None:
        self.tp = tp
        self.name = name

    def handle(self, t: Tokens, s: Session) -> Mode | None:
        m = self.tp.matches[self.name]
        negate = t.accept("no", "default") is not None
        word = t.keyword(*self.KEYWORDS)
        if word == "actions":
            t.end()
            return TpActionsMode(self.tp, self.name)
        if word in ("source", "destination"):
            t.keyword("prefix")
            nets = []
            while t:
                nets.append(t.prefix(m.version))
            if not nets and not negate:
                raise incomplete()
            key = "sources" if word == "source" else "destinations"
            self._set(**{key: () if negate else tuple(nets)})
            return None
        if negate:
            t.end()
            self._set(protocol=None, sport=None, dport=None)
            return None
        proto: str | None = t.accept("tcp", "udp", "icmp")
        if proto is None:
            proto = str(t.integer(0, 255))
        sport = dport = None
        if proto in ("tcp", "udp"):
            if t.accept("source"):
                t.keyword("port")
                sport = t.integer(0, 65535)
            if t.accept("destination"):
                t.keyword("port")
                dport = t.integer(0, 65535)
        t.end()
        self._set(protocol=proto, sport=sport, dport=dport)
        return None

    def _set(self, **changes: Any) -> None:  # fields of the match, each of its own type
        self.tp.matches[self.name] = replace(self.tp.matches[self.name], **changes)


class TpActionsMode(Mode):
    KEYWORDS = ("redirect", "drop", "count")
    NO_KEYWORDS = KEYWORDS

    def __init__(self, tp: TrafficPolicy, name: str) -> None:
        self.tp = tp
        self.name = name

    def handle(self, t: Tokens, s: Session) -> Mode | None:
        m = self.tp.matches[self.name]
        negate = t.accept("no", "default") is not None
        word = t.keyword(*self.KEYWORDS)
        if word == "drop":
            t.end()
            new = replace(m, drop=not negate)
        elif word == "count":
            counter = None if negate and not t else t.name()
            t.end()
            new = replace(m, count=None if negate else counter)
        else:
            t.keyword("next-hop")
            addr = None if negate and not t else t.address(m.version)
            t.end()
            new = replace(m, redirect=None if negate else addr)
        self.tp.matches[self.name] = new
        return None
