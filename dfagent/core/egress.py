"""Egress resolution for map mode: which next hop carried a mirrored SYN.

The egress is observed, not predicted: each ECMP member's egress is mirrored with its own
ERSPAN session id (or GRE key), and configuration maps that id to the member's next hop.
Pure; events are anything with ``session``, ``gre_key``, ``src``, ``dst``, ``sport``,
``dport`` (a :class:`dfagent.wire.syn.SynEvent`).
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from dfagent.core.nexthops import in_vips


class MirroredSyn(Protocol):
    @property
    def session(self) -> int | None: ...
    @property
    def gre_key(self) -> int | None: ...
    @property
    def src(self) -> str: ...
    @property
    def dst(self) -> str: ...
    @property
    def sport(self) -> int: ...
    @property
    def dport(self) -> int: ...


MAX_SESSION = 0xFFFFFFFF  # a GRE key is 32 bits (ERSPAN session ids are 10)


def check_nexthop_text(text: str) -> str | None:
    """Why ``text`` is not a next hop (``ADDR``, ``ADDR%IFNAME`` or ``%IFNAME``), or None."""
    addr, sep, ifname = text.partition("%")
    if sep and not _ifname_ok(ifname):
        return f"{ifname!r} is not an interface name (1-15 characters, no space or /)"
    if not addr:
        return None if sep else "empty next hop"
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return f"{addr!r} is not an IP address"
    if ip.is_link_local and ip.version == 6 and not sep:
        return f"{addr} is link-local: add %IFNAME"
    if ip.is_multicast or ip.is_unspecified or ip.is_loopback:
        return f"{addr} cannot be a next hop"
    return None


def _ifname_ok(name: str) -> bool:
    return 0 < len(name) <= 15 and not any(c in name for c in " /\t\n:") and name not in (".", "..")


def check_session_id(text: str) -> str | None:
    """Why ``text`` is not a mirror session id (ERSPAN session or GRE key), or None."""
    text = text.strip()
    if not (text.isascii() and text.isdigit()):  # "²".isdigit() is True; int("²") fails
        return f"{text!r} is not a session id (a whole number)"
    if int(text) > MAX_SESSION:
        return f"session {text} is more than 32 bits"
    return None


def parse_session_map(items: Iterable[str]) -> dict[int, str]:
    """``["1=10.0.1.2", "2=fe80::1%swp2", "3=%swp3"]`` → ``{1: "10.0.1.2", …}``; every error
    is reported at once.

    ``%IFNAME`` names the member by its interface: the flow's family then picks that
    member's v4 or v6 next hop (one mirror session per member interface covers both)."""
    out: dict[int, str] = {}
    errors = []
    for item in items:
        sid, sep, nh = item.partition("=")
        sid, nh = sid.strip(), nh.strip()
        why = check_session_id(sid)
        if not sep or not nh or (why and "more than" not in why):
            errors.append(f"{item!r}: want SESSION=NEXTHOP")
            continue
        if why:
            errors.append(f"{item!r}: {why}")
            continue
        why = check_nexthop_text(nh)
        if why:
            errors.append(f"{item!r}: {why}")
            continue
        if int(sid) in out:
            errors.append(f"{item!r}: session {int(sid)} given twice")
            continue
        out[int(sid)] = nh
    if errors:
        raise ValueError("; ".join(errors))
    return out


UNKNOWN_SESSION = "drop:unknown-session"
NOT_VIP = "drop:not-vip"
SYNACK_PINNED = "synack:pinned"  # a SYN-ACK pinned a flow whose SYN the agent never saw
SYNACK_SEEN = "synack:seen"  # a SYN-ACK of a flow its SYN had pinned: nothing to write
RECENT_SYNS = 1 << 16


@dataclass
class EgressResolver:
    """session id (ERSPAN) or GRE key → next hop text; counts what it could not place
    (``counters``: ``drop:unknown-session``, ``drop:not-vip``; the agent passes its metrics'
    mirror dict) and the SYNs of each session (``by_session``)."""

    sessions: Mapping[int, str]
    # flows to anything else are dropped and counted: a mirror (or a spoofed GRE packet)
    # must not pin traffic that is not for a VIP, nor fill the pin maps with it
    vips: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    counters: dict[str, int] = field(default_factory=dict)
    by_session: dict[int, int] = field(default_factory=dict)
    # egress by query: a SYN of no known session gets this next hop ("": ask the switch)
    default: str | None = None
    # or what this returns for (client, VIP, client port, VIP port): the Linux kernel's
    # answer (None: not known, counted as a SYN of no known session)
    query: Callable[[str, str, int, int], str | None] | None = None
    # a session naming a server that has a v4 and a v6 address: the flow's family picks
    # (``sessions`` holds the first one, which a flow of the other family cannot use)
    by_family: Mapping[int, Mapping[int, str]] = field(default_factory=dict)
    # second chance: the flows of the last `recent_max` SYNs, so the SYN-ACK of a flow its
    # SYN already pinned costs no second write (an evicted one is written again: harmless)
    second_chance: bool = False
    recent_max: int = RECENT_SYNS
    recent: OrderedDict[tuple[str, str, int, int], None] = field(default_factory=OrderedDict)

    @property
    def unknown(self) -> int:
        return self.counters.get(UNKNOWN_SESSION, 0)

    @property
    def not_vip(self) -> int:
        return self.counters.get(NOT_VIP, 0)

    def for_vip(self, dst: str) -> bool:
        return in_vips(dst, self.vips)

    def nexthop(self, ev: MirroredSyn) -> str | None:
        sid = ev.session if ev.session is not None else ev.gre_key
        nh = self.sessions.get(sid) if sid is not None else None
        if sid is None or nh is None:
            if self.default is not None:
                return self.default
            if self.query is not None and getattr(ev, "flow", None) is None:  # a SYN
                asked = self.query(ev.src, ev.dst, ev.sport, ev.dport)
                if asked is not None:
                    return asked
            self.counters[UNKNOWN_SESSION] = self.counters.get(UNKNOWN_SESSION, 0) + 1
            return None
        self.by_session[sid] = self.by_session.get(sid, 0) + 1
        fams = self.by_family.get(sid)
        if fams:
            return fams.get(6 if ":" in ev.dst else 4, nh)  # per SYN: no address parsing
        return nh

    def pin_items(self, events: Iterable[MirroredSyn]) -> list[tuple[str, str, int, int, str]]:
        """(client, VIP, client port, VIP port, next hop) of each event to pin. A SYN-ACK
        (an event with ``flow()``, mirrored where the server's answer entered) pins the
        reversed tuple, its session naming the member that leads to that server."""
        out = []
        recent = self.recent if self.second_chance else None
        for ev in events:
            of_synack = getattr(ev, "flow", None)
            synack = of_synack is not None
            flow = of_synack() if of_synack is not None else (ev.src, ev.dst, ev.sport, ev.dport)
            if not self.for_vip(flow[1]):
                self.counters[NOT_VIP] = self.counters.get(NOT_VIP, 0) + 1
                continue
            if synack and recent is not None and flow in recent:
                self.counters[SYNACK_SEEN] = self.counters.get(SYNACK_SEEN, 0) + 1
                continue
            nh = self.nexthop(ev)
            if nh is None:
                continue
            if synack:
                self.counters[SYNACK_PINNED] = self.counters.get(SYNACK_PINNED, 0) + 1
            elif recent is not None:  # a SYN that pins: its SYN-ACK will have nothing to do
                recent[flow] = None
                if len(recent) > self.recent_max:  # OrderedDict: O(1) from the front (a
                    recent.popitem(last=False)  # dict's first key slows as deletions pile)
            out.append((*flow, nh))
        return out
