"""Values the control API exchanges with the agent: plain frozen dataclasses, no I/O.

They live in ``core`` so the agent (which owns the state) can build them without importing
the gRPC layer; ``api`` converts them to and from protobuf, ``cli`` prints them.
Times are Unix seconds (float); counts that the agent may not know yet are ``None``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

# Next-hop states as the API reports them. The datapath's NhRecord knows active/drained/dead;
# "draining" is drained with pins left, "gone" a next hop the agent no longer tracks.
NEXTHOP_STATES = ("active", "draining", "drained", "dead", "gone")


@dataclass(frozen=True)
class AgentStatus:
    version: str
    mode: str  # "kernel", "map", …
    pid: int
    started_at: float
    vips: tuple[str, ...]
    nexthops: dict[str, int]  # state -> count, every NEXTHOP_STATES key present
    pinned: int | None  # pinned connections in total (None: not counted yet)
    repairs: int
    config_file: str
    healthy: bool
    problems: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        data["vips"] = list(self.vips)
        data["problems"] = list(self.problems)
        return data


@dataclass(frozen=True)
class NexthopInfo:
    name: str  # operator's name ("s1"), or the address when it has none
    address: str
    ifname: str
    family: int  # 4 or 6
    state: str  # one of NEXTHOP_STATES
    pinned: int | None
    mark: int
    table: int

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        data["mark"] = f"0x{self.mark:08x}"
        return data


@dataclass(frozen=True)
class FlowFilter:
    """Every field set must match; an empty filter matches every flow."""

    nexthop: str | None = None  # name or address
    vip: str | None = None  # destination address or prefix
    src: str | None = None
    dst: str | None = None
    sport: int | None = None
    dport: int | None = None

    def is_empty(self) -> bool:
        return all(v is None for v in asdict(self).values())


@dataclass(frozen=True)
class FlowInfo:
    src: str
    dst: str
    sport: int
    dport: int
    proto: str  # "tcp"
    nexthop: str  # name of the next hop it is pinned to
    state: str | None = None  # conntrack TCP state where known
    age_s: float | None = None

    def to_json(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class FlowPage:
    flows: tuple[FlowInfo, ...]
    next_page_token: str = ""  # empty: last page

    def to_json(self) -> dict[str, object]:
        return {
            "flows": [f.to_json() for f in self.flows],
            "next_page_token": self.next_page_token,
        }


@dataclass(frozen=True)
class DrainInfo:
    nexthop: str
    state: str  # one of NEXTHOP_STATES
    pinned: int | None  # pinned connections left
    deadline_at: float | None = None  # when the agent gives up waiting for the pins to go

    def to_json(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class Event:
    time: float
    kind: str  # "drain", "undrain", "nexthop-dead", "repair", …
    nexthop: str | None = None
    detail: str = ""

    def to_json(self) -> dict[str, object]:
        return asdict(self)
