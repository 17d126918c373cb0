"""The CLI session of one eAPI request: exec/enable, `configure`, and the config sub-modes.

As on EOS, a command not known in the current sub-mode is tried in the parent modes, and
running it there leaves the sub-modes first (so `flow B` right after `flow A`'s lines works,
and commits flow A). A flow is committed to the DirectFlow table when its mode is left, by
such a fall-through, `exit`, `end` or the end of the request. Anything else EOS would not
accept is a 1002 "Invalid input", so a typo in a client fails its test.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from dfagent.lab.eapi import policymodes, show
from dfagent.lab.eapi.directflow import ETH_ARP, ETH_IPV4, ETH_IPV6, FlowConfig
from dfagent.lab.eapi.modebase import Mode
from dfagent.lab.eapi.opsconfig import EventHandler, EventHandlerMode, monitor_command
from dfagent.lab.eapi.runconfig import Bgp, PrefixEntry, RouteMapEntry
from dfagent.lab.eapi.state import SwitchState
from dfagent.lab.eapi.tokens import NAME, CommandError, NoMatch, Tokens, incomplete

Result = dict[str, Any]

# Config commands for pins without DirectFlow (policymodes.py); `ip access-list` too.
POLICY_WORDS = ("ipv6", "class-map", "policy-map", "interface", "traffic-policies")
OPS_WORDS = ("event-handler", "monitor")  # opsconfig.py

# Flow names are one word without , . / (field notes), nor the CLI's | and ?.
_FLOW_NAME = re.compile(r"^[^\s,./|?]+$")


class ConfigMode(Mode):
    KEYWORDS = ("directflow", "hostname", "ip", "route-map", "router") + POLICY_WORDS + OPS_WORDS
    NO_KEYWORDS = ("directflow", "ip", "route-map", "router") + POLICY_WORDS + OPS_WORDS

    def handle(self, t: Tokens, s: Session) -> Mode | None:
        cfg = s.state.config
        negate = t.accept("no", "default") is not None
        word = t.keyword(*(self.NO_KEYWORDS if negate else self.KEYWORDS))
        if word == "directflow":
            t.end()
            if negate:
                s.state.flows.remove_all()
                s.state.flows.set_enabled(False)
                return None
            return DirectFlowMode()
        if word == "hostname":
            name = t.name()
            t.end()
            cfg.hostname = name
            return None
        if word in ("ip", "ipv6"):
            if t.keyword("prefix-list", "access-list") == "access-list":
                return policymodes.config_command(word, negate, t, s)
            version = 4 if word == "ip" else 6
            name = t.name()
            if negate:
                if t.accept("seq"):
                    seq = t.integer(0, 65535)
                    t.end()
                    cfg.plists(version).get(name, {}).pop(seq, None)
                else:
                    t.end()
                    cfg.plists(version).pop(name, None)
                return None
            if not t:
                cfg.add_prefix(name, None, version)
                return PrefixListMode(name, version)
            prefix_entry(t, s, name, version)
            return None
        if word in POLICY_WORDS:
            return policymodes.config_command(word, negate, t, s)
        if word == "monitor":
            monitor_command(t, s.state.ops, negate)
            return None
        if word == "event-handler":
            name = t.name()
            t.end()
            if negate:
                s.state.ops.handlers.pop(name, None)
                return None
            return EventHandlerMode(s.state.ops.handlers.setdefault(name, EventHandler()))
        if word == "route-map":
            name = t.name()
            kind = t.accept("permit", "deny")
            rm_seq = t.integer(0, 65535) if t else None
            t.end()
            if negate:
                entries = cfg.route_maps.get(name)
                if entries is not None and rm_seq is not None:
                    entries.pop(rm_seq, None)
                if entries is not None and (rm_seq is None or not entries):
                    cfg.route_maps.pop(name, None)
                return None
            entry = cfg.route_map_entry(name, kind != "deny", 10 if rm_seq is None else rm_seq)
            return RouteMapMode(entry)
        # router bgp ASN
        t.keyword("bgp")
        asn = t.integer(1, 4294967295)
        t.end()
        if negate:
            if cfg.bgp is not None and cfg.bgp.asn == asn:
                cfg.bgp = None
            return None
        if cfg.bgp is not None and cfg.bgp.asn != asn:
            raise CommandError(1002, f"BGP is already running with AS number {cfg.bgp.asn}")
        if cfg.bgp is None:
            cfg.bgp = Bgp(asn=asn)
        return BgpMode()


def prefix_entry(t: Tokens, s: Session, name: str, version: int) -> None:
    """[seq N] permit|deny PREFIX [ge N] [le N]"""
    cfg = s.state.config
    seq = t.integer(0, 65535) if t.accept("seq") else cfg.next_prefix_seq(name, version)
    permit = t.keyword("permit", "deny") == "permit"
    prefix = t.prefix(version)
    ge = le = None
    if t.accept("ge"):
        ge = t.integer(prefix.prefixlen + 1, prefix.max_prefixlen)
    if t.accept("le"):
        le = t.integer(max(prefix.prefixlen, ge or 0), prefix.max_prefixlen)
    t.end()
    cfg.add_prefix(name, PrefixEntry(seq=seq, permit=permit, prefix=prefix, ge=ge, le=le), version)


class PrefixListMode(Mode):
    KEYWORDS = ("seq", "permit", "deny")
    NO_KEYWORDS = ("seq",)

    def __init__(self, name: str, version: int = 4) -> None:
        self.name = name
        self.version = version

    def handle(self, t: Tokens, s: Session) -> Mode | None:
        if t.accept("no", "default"):
            t.keyword("seq")
            seq = t.integer(0, 65535)
            t.end()
            s.state.config.plists(self.version).get(self.name, {}).pop(seq, None)
            return None
        prefix_entry(t, s, self.name, self.version)
        return None


class RouteMapMode(Mode):
    KEYWORDS = ("match", "set")
    NO_KEYWORDS = ("match", "set")

    def __init__(self, entry: RouteMapEntry) -> None:
        self.entry = entry

    def handle(self, t: Tokens, s: Session) -> Mode | None:
        negate = t.accept("no", "default") is not None
        word = t.keyword("match", "set")
        if word == "set":
            t.keyword("local-preference")
            pref = t.integer(0, 4294967295) if (t or not negate) else None
            t.end()
            self.entry.set_local_pref = None if negate else pref
            return None
        fam = t.keyword("ip", "ipv6")
        what = t.keyword("next-hop", "address")
        t.keyword("prefix-list")
        pl = t.name() if (t or not negate) else None
        t.end()
        attr = "match_" + ("nexthop" if what == "next-hop" else "address")
        attr += "_pl" if fam == "ip" else "6_pl"
        setattr(self.entry, attr, None if negate else pl)
        return None


class BgpMode(Mode):
    KEYWORDS = ("neighbor", "router-id", "maximum-paths")
    NO_KEYWORDS = KEYWORDS

    def handle(self, t: Tokens, s: Session) -> Mode | None:
        bgp = s.state.config.bgp
        assert bgp is not None
        negate = t.accept("no", "default") is not None
        word = t.keyword(*self.KEYWORDS)
        if word == "router-id":
            rid = None if negate and not t else str(t.address(4))
            t.end()
            bgp.router_id = rid
            return None
        if word == "maximum-paths":
            if negate:
                t.end()
                bgp.maximum_paths = None
                return None
            paths = t.integer(1, 600)
            ecmp = t.integer(1, 600) if t.accept("ecmp") else None
            t.end()
            bgp.maximum_paths = (paths, ecmp)
            return None
        key = neighbor_key(t)
        if negate and not t:
            bgp.neighbors.pop(key, None)
            return None
        what = t.keyword("peer", "peer-group", "remote-as", "route-map")
        if what in ("peer", "peer-group"):
            if what == "peer":
                t.keyword("group")
            group = t.name() if t else None
            t.end()
            if group is None:  # `neighbor G peer group`: G is a group
                if negate:
                    bgp.neighbors.pop(key, None)
                else:
                    bgp.neighbor(key).is_group = True
                return None
            if group not in bgp.neighbors or not bgp.neighbors[group].is_group:
                raise CommandError(1002, f"peer group {group} does not exist")
            bgp.neighbor(key).peer_group = None if negate else group
            return None
        if what == "remote-as":
            asn = None if negate and not t else t.integer(1, 4294967295)
            t.end()
            bgp.neighbor(key).remote_as = asn
            return None
        name = None if negate and t.peek() in ("in", "out") else t.name()
        direction = t.keyword("in", "out")
        t.end()
        n = bgp.neighbor(key)
        if direction == "in":
            n.route_map_in = None if negate else name
        else:
            n.route_map_out = None if negate else name
        return None


def neighbor_key(t: Tokens) -> str:
    word = t.peek()
    if word is None:
        raise incomplete()
    try:
        key = str(ipaddress.ip_address(word))
    except ValueError:
        if not NAME.match(word) or word[0].isdigit():
            raise t.invalid() from None
        key = word
    t.pos += 1
    return key


class DirectFlowMode(Mode):
    KEYWORDS = ("flow", "shutdown")
    NO_KEYWORDS = KEYWORDS

    def handle(self, t: Tokens, s: Session) -> Mode | None:
        negate = t.accept("no", "default") is not None
        word = t.keyword("flow", "shutdown")
        if word == "shutdown":
            t.end()
            s.state.flows.set_enabled(negate)
            return None
        name = flow_name(t)
        t.end()
        if negate:
            s.state.flows.remove(name)
            return None
        existing = s.state.flows.get(name)
        return FlowMode(existing.config if existing else FlowConfig(name=name))


def flow_name(t: Tokens) -> str:
    word = t.peek()
    if word is None:
        raise incomplete()
    if not _FLOW_NAME.match(word):
        raise t.invalid()
    t.pos += 1
    return word


def _ethertype(t: Tokens) -> int:
    word = t.accept("ip", "ipv6", "arp")
    if word is not None:
        return {"ip": ETH_IPV4, "ipv6": ETH_IPV6, "arp": ETH_ARP}[word]
    raw = t.peek()
    if raw is None:
        raise incomplete()
    try:
        value = int(raw, 16) if raw.lower().startswith("0x") else int(raw)
    except ValueError:
        raise t.invalid() from None
    if not 0 <= value <= 0xFFFF:
        raise t.invalid()
    t.pos += 1
    return value


def _protocol(t: Tokens) -> int:
    word = t.accept("tcp", "udp", "icmp")
    if word is not None:
        return {"tcp": 6, "udp": 17, "icmp": 1}[word]
    return t.integer(0, 255)


def _match_address(t: Tokens, family: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """`A`, `A/len` or (IPv4) `A MASK`."""
    version = 4 if family == "ip" else 6
    word = t.peek()
    if word is None:
        raise incomplete()
    if "/" in word:
        return t.prefix(version, strict=False)
    addr = t.address(version)
    nxt = t.peek()
    if version == 4 and nxt is not None and nxt.count(".") == 3:
        mask = t.address(4)
        try:
            return ipaddress.ip_network(f"{addr}/{mask}", strict=False)
        except ValueError:
            t.pos -= 1
            raise t.invalid() from None
    return ipaddress.ip_network(addr)


class FlowMode(Mode):
    KEYWORDS = ("match", "action", "priority", "timeout", "persistent")
    NO_KEYWORDS = KEYWORDS

    def __init__(self, config: FlowConfig) -> None:
        self.config = config

    def leave(self, s: Session) -> None:
        s.state.flows.commit(self.config)

    def handle(self, t: Tokens, s: Session) -> Mode | None:
        c = self.config
        negate = t.accept("no", "default") is not None
        word = t.keyword(*self.KEYWORDS)
        if word == "persistent":
            t.end()
            self.config = c.with_(persistent=not negate)
        elif word == "priority":
            value = 0 if negate and not t else t.integer(0, 65535)
            t.end()
            self.config = c.with_(priority=0 if negate else value)
        elif word == "timeout":
            which = t.keyword("idle", "hard")
            value = 0 if negate and not t else t.integer(0, 65535)
            t.end()
            self.config = c.with_(**{f"{which}_timeout": 0 if negate else value})
        elif word == "match":
            self.config = self._match(t, negate)
        else:
            self.config = self._action(t, negate)
        return None

    def _match(self, t: Tokens, negate: bool) -> FlowConfig:
        c = self.config
        what = t.keyword("ethertype", "source", "destination", "ip", "input")
        if what == "ethertype":
            value = None if negate and not t else _ethertype(t)
            t.end()
            return c.with_(ethertype=None if negate else value)
        if what == "input":
            t.keyword("interface")
            names: list[str] = []
            while t:
                names.append(t.interface())
            if not names and not negate:
                raise incomplete()
            return c.with_(in_interfaces=() if negate else tuple(names))
        if what == "ip":
            t.keyword("protocol")
            proto = None if negate and not t else _protocol(t)
            t.end()
            return c.with_(ip_proto=None if negate else proto)
        side = "src" if what == "source" else "dst"
        kind = t.keyword("ip", "ipv6", "port")
        if kind == "port":
            port = None if negate and not t else t.integer(0, 65535)
            t.end()
            return c.with_(**{"sport" if side == "src" else "dport": None if negate else port})
        net = None if negate and not t else _match_address(t, kind)
        t.end()
        return c.with_(**{side: None if negate else net})

    def _action(self, t: Tokens, negate: bool) -> FlowConfig:
        c = self.config
        what = t.keyword("output", "drop")
        if what == "drop":
            t.end()
            return c.with_(drop=not negate)
        where = t.keyword("nexthop", "interface")
        if where == "nexthop":
            addr = None if negate and not t else t.address()
            t.end()
            return c.with_(nexthop=None if negate else addr)
        names: list[str] = []
        while t:
            names.append(t.interface())
        if not names and not negate:
            raise incomplete()
        return c.with_(out_interfaces=() if negate else tuple(names))


class Session:
    """One eAPI request's CLI session: starts unprivileged in exec mode, as EOS does."""

    def __init__(
        self,
        state: SwitchState,
        privilege: int = 15,
        auto_complete: bool = False,
        text: bool = False,
    ) -> None:
        self.state = state
        self.privilege = privilege
        self.auto = auto_complete
        self.text = text
        self.privileged = False
        self.stack: list[Mode] = []

    def _empty(self) -> Result:
        return {"output": ""} if self.text else {}

    def run(self, command: str, input_text: str | None = None) -> Result:
        words = command.split()
        if not words or words[0].startswith("!"):  # an empty line or a config comment
            return self._empty()
        pipe: list[str] = []
        if "|" in words:
            at = words.index("|")
            words, pipe = words[:at], words[at + 1 :]
        t = Tokens(words, self.auto)
        if t.accept("show"):
            return show.run(self, t, pipe)
        if pipe:
            raise CommandError(1002, f"Invalid input (at token {len(words)}: '|')")
        if t.accept("exit"):
            t.end()
            if self.stack:
                self._pop(len(self.stack) - 1)
            return self._empty()
        if t.accept("end"):
            t.end()
            self._pop(0)
            return self._empty()
        if not self.stack:
            return self._exec(t, command, input_text)
        for depth in range(len(self.stack) - 1, -1, -1):
            if self.stack[depth].knows(t):
                self._pop(depth + 1)
                sub = self.stack[-1].handle(t, self)
                if sub is not None:
                    self.stack.append(sub)
                return self._empty()
        t.accept("no", "default")  # the error points at the word after `no`
        raise t.invalid()

    def _pop(self, keep: int) -> None:
        """Leave sub-modes until `keep` remain, innermost first."""
        while len(self.stack) > keep:
            self.stack.pop().leave(self)

    def close(self) -> None:
        """The request ended: leave every mode, committing what was edited."""
        self._pop(0)

    def _exec(self, t: Tokens, command: str, input_text: str | None) -> Result:
        try:
            word = t.first("enable", "disable", "configure", "copy", "write")
        except NoMatch:
            raise t.invalid() from None
        if word == "enable":
            t.end()
            secret = self.state.enable_secret
            if secret is not None and (input_text or "").rstrip("\n") != secret:
                raise CommandError(1002, "Bad secret")
            self.privileged = True
            return self._empty()
        if word == "disable":
            t.end()
            self.privileged = False
            return self._empty()
        if not self.privileged:
            raise CommandError(1002, "Invalid input (privileged mode required)")
        if self.privilege < 15:
            raise CommandError(1005, f"Authorization denied for command '{command.strip()}'")
        if word == "configure":
            t.accept("terminal")
            t.end()
            self.stack.append(ConfigMode())
            return self._empty()
        if word == "copy":
            t.keyword("running-config")
            t.keyword("startup-config")
        else:
            t.accept("memory")
        t.end()
        self.state.save_startup()
        message = "Copy completed successfully."
        return {"output": message + "\n"} if self.text else {"messages": [message]}
