"""What the switch holds: every pin-like entry with its state, read in one request.

DirectFlow: ``show directflow detail`` lists the programmed flows (with ``matchPackets``)
and, under ``details.status``, the status of every *configured* flow: ``Flow programmed``,
``Flow rejected due to insufficient resources`` (the TCAM is full), or ``Flow not
programmed`` (its timeout took it out of hardware, or DirectFlow is shut down; the flow stays
in the configuration until ``no flow``).

PBR and traffic-policy: the entries in dfagent's policy, from ``show running-config``
(text); the switch reports no per-entry state dfagent relies on, so they count as
programmed, without counters.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

PROGRAMMED = "programmed"
REJECTED = "rejected"
NOT_PROGRAMMED = "not-programmed"

_STATUS = {
    "Flow programmed": PROGRAMMED,
    "Flow rejected due to insufficient resources": REJECTED,
    "Flow not programmed": NOT_PROGRAMMED,
}


@dataclass(frozen=True)
class DeviceFlow:
    name: str
    nexthop: str  # ADDR or %INTERFACE; "" when the switch does not say (not programmed)
    packets: int | None
    status: str  # PROGRAMMED | REJECTED | NOT_PROGRAMMED


def _nexthop(action: Mapping[str, Any]) -> str:
    if action.get("outputNexthop"):
        return str(action["outputNexthop"])
    intfs = action.get("outInterfaces") or []
    return f"%{intfs[0]}" if intfs else ""


def parse_directflow_detail(doc: Mapping[str, Any]) -> list[DeviceFlow]:
    flows = {f.get("name"): f for f in doc.get("flows", []) if isinstance(f, Mapping)}
    details = doc.get("details") or {}
    status = details.get("status") if isinstance(details, Mapping) else None
    if not isinstance(status, Mapping):
        status = {name: "Flow programmed" for name in flows}
    out = []
    for name, st in status.items():
        f = flows.get(name) or {}
        packets = f.get("matchPackets")
        out.append(
            DeviceFlow(
                name=str(name),
                nexthop=_nexthop(f.get("action") or {}),
                packets=int(packets) if isinstance(packets, int) else None,
                status=_STATUS.get(str(st), NOT_PROGRAMMED),
            )
        )
    for name, f in flows.items():  # programmed but missing from the status list
        if name not in status:
            out.append(DeviceFlow(str(name), _nexthop(f.get("action") or {}),
                                  f.get("matchPackets"), PROGRAMMED))  # fmt: skip
    return out


def parse_pbr_config(text: str, policy: str) -> list[DeviceFlow]:
    """Classes of ``policy-map type pbr POLICY`` with their ``set nexthop``."""
    out: list[DeviceFlow] = []
    in_policy = False
    cls: str | None = None
    nh = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not raw[:1].isspace():
            if cls is not None:
                out.append(DeviceFlow(cls, nh, None, PROGRAMMED))
                cls = None
            in_policy = line == f"policy-map type pbr {policy}"
            continue
        if not in_policy:
            continue
        m = re.match(r"^class (\S+)$", line)
        if m:
            if cls is not None:
                out.append(DeviceFlow(cls, nh, None, PROGRAMMED))
            cls, nh = m.group(1), ""
            continue
        m = re.match(r"^set nexthop (\S+)$", line)
        if m and cls is not None:
            nh = m.group(1)
    if cls is not None:
        out.append(DeviceFlow(cls, nh, None, PROGRAMMED))
    return out


def parse_traffic_policy_config(text: str, policy: str) -> list[DeviceFlow]:
    """``match NAME ipv4|ipv6`` rules of ``traffic-policy POLICY`` with their redirect."""
    out: list[DeviceFlow] = []
    in_policy = False
    rule: str | None = None
    nh = ""
    depth_policy = -1
    for raw in text.splitlines():
        if not raw.strip() or raw.strip() == "!":
            continue
        depth = len(raw) - len(raw.lstrip())
        line = raw.strip()
        if line == f"traffic-policy {policy}":
            in_policy, depth_policy = True, depth
            continue
        if in_policy and depth <= depth_policy:
            in_policy = False
            if rule is not None:
                out.append(DeviceFlow(rule, nh, None, PROGRAMMED))
                rule = None
        if not in_policy:
            continue
        m = re.match(r"^match (\S+) ipv[46]$", line)
        if m:
            if rule is not None:
                out.append(DeviceFlow(rule, nh, None, PROGRAMMED))
            rule, nh = m.group(1), ""
            continue
        m = re.match(r"^redirect next-hop (\S+)$", line)
        if m and rule is not None:
            nh = m.group(1)
    if rule is not None:
        out.append(DeviceFlow(rule, nh, None, PROGRAMMED))
    return out
