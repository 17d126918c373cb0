"""Protobuf messages <-> core.model dataclasses, both ways, in one place.

proto3 ``optional`` fields carry the model's ``None`` (pinned not counted yet, a filter not
set); ``HasField`` tells them apart from a real zero.
"""

from __future__ import annotations

from typing import Any

from dfagent.api import dfagent_pb2 as pb
from dfagent.core.model import (
    NEXTHOP_STATES,
    AgentStatus,
    DrainInfo,
    Event,
    FlowFilter,
    FlowInfo,
    FlowPage,
    NexthopInfo,
)


def _opt(msg: Any, name: str) -> Any:
    return getattr(msg, name) if msg.HasField(name) else None


def _set(kwargs: dict[str, Any], **values: Any) -> dict[str, Any]:
    """Keyword arguments for a message, leaving out the ``None`` ones (unset optionals)."""
    kwargs.update({k: v for k, v in values.items() if v is not None})
    return kwargs


def status_to_pb(s: AgentStatus) -> pb.StatusReply:
    return pb.StatusReply(
        **_set(
            {
                "version": s.version,
                "mode": s.mode,
                "pid": s.pid,
                "started_at": s.started_at,
                "vips": list(s.vips),
                "nexthops": dict(s.nexthops),
                "repairs": s.repairs,
                "config_file": s.config_file,
                "healthy": s.healthy,
                "problems": list(s.problems),
            },
            pinned=s.pinned,
        )
    )


def status_from_pb(m: pb.StatusReply) -> AgentStatus:
    counts = {state: 0 for state in NEXTHOP_STATES}
    counts.update(m.nexthops)
    return AgentStatus(
        version=m.version,
        mode=m.mode,
        pid=m.pid,
        started_at=m.started_at,
        vips=tuple(m.vips),
        nexthops=counts,
        pinned=_opt(m, "pinned"),
        repairs=m.repairs,
        config_file=m.config_file,
        healthy=m.healthy,
        problems=tuple(m.problems),
    )


def nexthop_to_pb(n: NexthopInfo) -> pb.Nexthop:
    return pb.Nexthop(
        **_set(
            {
                "name": n.name,
                "address": n.address,
                "ifname": n.ifname,
                "family": n.family,
                "state": n.state,
                "mark": n.mark,
                "table": n.table,
            },
            pinned=n.pinned,
        )
    )


def nexthop_from_pb(m: pb.Nexthop) -> NexthopInfo:
    return NexthopInfo(
        name=m.name,
        address=m.address,
        ifname=m.ifname,
        family=m.family,
        state=m.state,
        pinned=_opt(m, "pinned"),
        mark=m.mark,
        table=m.table,
    )


_FILTER_FIELDS = ("nexthop", "vip", "src", "dst", "sport", "dport")


def filter_to_pb(f: FlowFilter) -> pb.FlowFilter:
    return pb.FlowFilter(**_set({}, **{k: getattr(f, k) for k in _FILTER_FIELDS}))


def filter_from_pb(m: pb.FlowFilter) -> FlowFilter:
    return FlowFilter(**{k: _opt(m, k) for k in _FILTER_FIELDS})


def flow_to_pb(f: FlowInfo) -> pb.Flow:
    return pb.Flow(
        **_set(
            {
                "src": f.src,
                "dst": f.dst,
                "sport": f.sport,
                "dport": f.dport,
                "proto": f.proto,
                "nexthop": f.nexthop,
            },
            state=f.state,
            age_s=f.age_s,
        )
    )


def flow_from_pb(m: pb.Flow) -> FlowInfo:
    return FlowInfo(
        src=m.src,
        dst=m.dst,
        sport=m.sport,
        dport=m.dport,
        proto=m.proto,
        nexthop=m.nexthop,
        state=_opt(m, "state"),
        age_s=_opt(m, "age_s"),
    )


def page_to_pb(p: FlowPage) -> pb.ListFlowsReply:
    return pb.ListFlowsReply(
        flows=[flow_to_pb(f) for f in p.flows], next_page_token=p.next_page_token
    )


def page_from_pb(m: pb.ListFlowsReply) -> FlowPage:
    return FlowPage(tuple(flow_from_pb(f) for f in m.flows), m.next_page_token)


def drain_to_pb(d: DrainInfo) -> pb.DrainReply:
    return pb.DrainReply(
        **_set(
            {"nexthop": d.nexthop, "state": d.state},
            pinned=d.pinned,
            deadline_at=d.deadline_at,
        )
    )


def drain_from_pb(m: pb.DrainReply) -> DrainInfo:
    return DrainInfo(
        nexthop=m.nexthop,
        state=m.state,
        pinned=_opt(m, "pinned"),
        deadline_at=_opt(m, "deadline_at"),
    )


def event_to_pb(e: Event) -> pb.Event:
    return pb.Event(**_set({"time": e.time, "kind": e.kind, "detail": e.detail}, nexthop=e.nexthop))


def event_from_pb(m: pb.Event) -> Event:
    return Event(time=m.time, kind=m.kind, nexthop=_opt(m, "nexthop"), detail=m.detail)
