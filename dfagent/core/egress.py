"""Egress resolution for map mode: which next hop carried a mirrored SYN.

The egress is observed, not predicted: each ECMP member's egress is mirrored with its own
ERSPAN session id (or GRE key), and configuration maps that id to the member's next hop.
Pure; events are anything with ``session``, ``gre_key``, ``src``, ``dst``, ``sport``,
``dport`` (a :class:`dfagent.wire.syn.SynEvent`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol


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


def parse_session_map(items: Iterable[str]) -> dict[int, str]:
    """``["1=10.0.1.2", "2=fe80::1%swp2", "3=%swp3"]`` → ``{1: "10.0.1.2", …}``.

    ``%IFNAME`` names the member by its interface: the flow's family then picks that
    member's v4 or v6 next hop (one mirror session per member interface covers both)."""
    out: dict[int, str] = {}
    errors = []
    for item in items:
        sid, sep, nh = item.partition("=")
        if not sep or not sid.strip().isdigit() or not nh.strip():
            errors.append(f"{item!r}: want SESSION=NEXTHOP")
            continue
        if int(sid) in out:
            errors.append(f"{item!r}: session {int(sid)} given twice")
            continue
        out[int(sid)] = nh.strip()
    if errors:
        raise ValueError("; ".join(errors))
    return out


@dataclass
class EgressResolver:
    """session id (ERSPAN) or GRE key → next hop text; counts what it could not place."""

    sessions: Mapping[int, str]
    unknown: int = 0
    by_session: dict[int, int] = field(default_factory=dict)

    def nexthop(self, ev: MirroredSyn) -> str | None:
        sid = ev.session if ev.session is not None else ev.gre_key
        nh = self.sessions.get(sid) if sid is not None else None
        if sid is None or nh is None:
            self.unknown += 1
            return None
        self.by_session[sid] = self.by_session.get(sid, 0) + 1
        return nh

    def pin_items(self, events: Iterable[MirroredSyn]) -> list[tuple[str, str, int, int, str]]:
        out = []
        for ev in events:
            nh = self.nexthop(ev)
            if nh is not None:
                out.append((ev.src, ev.dst, ev.sport, ev.dport, nh))
        return out
