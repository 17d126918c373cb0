"""`dfagent linux status` and `cleanup`: separate processes that read (or remove) what the
datapath installed, checked against the kernel itself — never against memory alone.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from typing import Any

from dfagent.backends.linux import conntrack, state
from dfagent.backends.linux.datapath import count_flow_pins
from dfagent.backends.linux.netlink import Netlink
from dfagent.backends.linux.nft import Nft, NftError
from dfagent.backends.linux.ruleset import (
    BASE_CHAINS,
    PROBE_INVALID,
    PROBE_PACKETS,
    RulesetConfig,
    T,
    hexmark,
    verdict_slot,
)
from dfagent.core.marks import MarkSpace, parse_mask


def space_of(st: dict[str, Any]) -> MarkSpace:
    try:
        return MarkSpace(parse_mask(st.get("mark_mask") or MarkSpace().mask))
    except (TypeError, ValueError):
        return MarkSpace()


def installed(
    nft: Nft, pin_maps: bool, one_direction: bool = False, ct_copy: bool = False
) -> tuple[bool, list[str], dict[int, list[str]]]:
    """(table present, what is missing from it, slot → nh-map keys in the kernel)."""
    try:
        listing = nft.run_json(f"list table {T}", terse=True)
    except NftError:
        return False, ["table inet dfagent"], {}
    rules: dict[str, int] = {}
    names: set[str] = set()
    for item in listing:
        if "chain" in item:
            rules.setdefault(str(item["chain"]["name"]), 0)
        elif "rule" in item:
            rules[str(item["rule"]["chain"])] = rules.get(str(item["rule"]["chain"]), 0) + 1
        elif "map" in item or "set" in item:
            names.add(str((item.get("map") or item.get("set") or {}).get("name")))
    missing = [f"chain {c}" for c in BASE_CHAINS if not rules.get(c)]
    if pin_maps:  # map mode records nothing in postrouting
        missing = [m for m in missing if m != "chain postrouting"]
    want = RulesetConfig((), pin_maps=pin_maps, one_direction=one_direction, ct_copy=ct_copy).maps
    missing += [f"map {m}" for m in sorted(want - names)]
    keys: dict[int, list[str]] = {}
    for mapname in ("nh4", "nh6"):
        for key, value in nft.map_elements(mapname):
            slot = verdict_slot(value)
            if slot is not None and isinstance(key, list):
                keys.setdefault(slot, []).append(f"{key[0]}%{key[1]}")
    return True, missing, keys


def status(state_dir: str, count: bool = True) -> dict[str, Any]:
    st = state.load(state_dir)
    space = space_of(st)
    agent = state.running_agent(state_dir)
    nl = Netlink()
    nft = Nft()
    try:
        rules = nl.owned_rules()
        routes = nl.owned_routes()
        one_direction = bool(st.get("one_direction"))
        table, missing, keys = installed(
            nft, st.get("mode") == "map", one_direction, bool(st.get("ct_copy"))
        )
        released = {
            s
            for m in nft.set_elements("released")
            if isinstance(m, int)
            for s in [space.slot(m)]
            if s is not None
        }
        pinned: dict[int, int] | None = None
        count_error = None
        if count:
            try:
                pinned = (
                    count_flow_pins(nft, space) if one_direction else conntrack.count_by_slot(space)
                )
            except conntrack.ConntrackError as exc:
                count_error = str(exc)
        nexthops = []
        records = st.get("status")
        records = records if isinstance(records, list) else []
        for rec in records:
            if not isinstance(rec, dict) or not isinstance(rec.get("table"), int):
                continue
            slot = int(rec["table"])
            out: dict[str, Any] = {
                k: rec.get(k) for k in ("nexthop", "family", "ifname", "gateway", "state")
            }
            out["table"] = slot
            out["mark"] = hexmark(space.mark(slot)) if _fits(space, slot) else "?"
            out["rule"] = any(r.table == slot and r.mask == space.mask for r in rules)
            out["routes"] = sorted(r.dst for r in routes if r.table == slot)
            out["in_map"] = slot in keys
            out["released"] = slot in released
            # a live count or nothing: the state file's snapshot is never shown as live
            out["pinned"] = pinned.get(slot, 0) if pinned is not None else None
            problems = []
            if rec.get("state") in ("active", "drained") and not out["rule"]:
                problems.append("rule")
            if rec.get("state") in ("active", "drained") and not out["routes"]:
                problems.append("routes")
            if rec.get("state") == "active" and table and not out["in_map"]:
                problems.append("map element")
            out["missing"] = problems
            missing += [f"{out['nexthop']} {p}" for p in problems]
            nexthops.append(out)
        known = {n["table"] for n in nexthops}
        other = {hexmark(s): n for s, n in (pinned or {}).items() if s not in known}
        return {
            "agent": agent,
            "table": table,
            "missing": missing,
            "repairs": st.get("repairs", 0),
            "last_repair": st.get("last_repair"),
            "vips": st.get("vips", []),
            "mode": st.get("mode"),
            "mark_mask": hexmark(space.mask),
            "one_direction": one_direction,
            # conntrack modes: the agent's last verdict, and the kernel's counters since the
            # table was made (TCP packets to the VIPs, and those conntrack called INVALID)
            "direction": {
                **_as_dict(st.get("direction")),
                "counters": {
                    k: v for k, v in nft.counters().items() if k in (PROBE_PACKETS, PROBE_INVALID)
                },
            },
            "nexthops": nexthops,
            "rules": len(rules),
            "routes": len(routes),
            "pinned_unknown_marks": other,
            "pinned_counted": pinned is not None,
            "count_error": count_error,
            "state_updated": st.get("updated"),
        }
    finally:
        nl.close()


def _as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _fits(space: MarkSpace, slot: int) -> bool:
    try:
        space.mark(slot)
    except ValueError:
        return False
    return True


def format_status(data: dict[str, Any]) -> str:
    agent = data.get("agent")
    if agent:
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(agent.get("since") or 0))
        who = f"running (pid {agent.get('pid')}, since {since})"
    else:
        who = "not running (pins already made stay in the kernel)"
    if not data["table"]:
        health = "MISSING: table inet dfagent is not installed"
    elif data["missing"]:
        health = "MISSING: " + ", ".join(data["missing"])
    else:
        health = "complete"
    repairs = data.get("repairs") or 0
    if repairs:
        last = data.get("last_repair") or {}
        ago = time.time() - float(last.get("at") or time.time())
        health += f"; repaired {repairs}x (last {ago:.0f} s ago: {last.get('reason')})"
    lines = [
        f"agent: {who}",
        f"datapath: {health}",
        f"mode: {data.get('mode')}{' (one direction)' if data.get('one_direction') else ''}"
        f"   vips: {', '.join(data.get('vips') or []) or '-'}"
        f"   mark bits: {data['mark_mask']}",
        f"rules: {data['rules']}   table routes: {data['routes']}",
        f"{'NEXT HOP':34} {'FAM':>3} {'MARK':>10} {'TABLE':>10} {'STATE':8} {'RULE':4} PINNED",
    ]
    for nh in data["nexthops"]:
        pinned = "-" if nh.get("pinned") is None else nh["pinned"]
        lines.append(
            f"{nh['nexthop']!s:34} {nh['family']!s:>3} {nh['mark']:>10} {nh['table']:>10}"
            f" {nh['state']!s:8} {'yes' if nh['rule'] else 'no':4} {pinned}"
        )
    if not data.get("pinned_counted"):
        lines.append("pinned: not counted" + (f" ({data['count_error']})" if data.get(
            "count_error") else " (--no-count)"))  # fmt: skip
    d = data.get("direction") or {}
    if d.get("suspected"):
        lines.append(
            f"WARNING: conntrack sees no replies for the VIPs ({d.get('invalid')} of "
            f"{d.get('packets')} packets INVALID in the last window; {d.get('warnings')} "
            "warnings): the router sees one direction only, run with --one-direction"
        )
    if data.get("pinned_unknown_marks"):
        lines.append(f"pinned under unknown marks: {json.dumps(data['pinned_unknown_marks'])}")
    return "\n".join(lines)


def stop_agent(state_dir: str, timeout: float = 10.0) -> int | None:
    """SIGTERM the agent running on this state dir and wait for it; its pid, or None."""
    agent = state.running_agent(state_dir)
    if not agent or not isinstance(agent.get("pid"), int):
        return None
    pid = int(agent["pid"])
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    end = time.monotonic() + timeout
    while time.monotonic() < end and state.running_agent(state_dir):
        time.sleep(0.05)
    if state.running_agent(state_dir):
        raise state.AgentRunning(f"dfagent pid {pid} did not stop within {timeout:.0f} s")
    return pid


EMPTY_INCLUDE = "# dfagent was removed from this router (dfagent linux cleanup): nothing here.\n"


def _clear_conntrack(space: MarkSpace, attempts: int = 3) -> tuple[int, int, str | None]:
    """Clear dfagent's bits from conntrack marks: (entries that carried them, entries still
    carrying them, last error). A big, busy table can make ``conntrack -U`` fail with
    ENOBUFS part-way; it is retried, and what is left is reported, not fatal: a later start
    quarantines marks it finds on live entries, so none is ever reused wrongly."""
    error = None
    try:
        carried = left = sum(conntrack.count_by_slot(space).values())
    except conntrack.ConntrackError as exc:
        return 0, 0, f"conntrack -L: {exc}"
    for _ in range(attempts):
        if not left:
            break
        try:
            conntrack.clear_marks(space)
        except conntrack.ConntrackError as exc:
            error = str(exc)
        try:
            left = sum(conntrack.count_by_slot(space).values())
        except conntrack.ConntrackError as exc:
            error = str(exc)
    return carried, left, error if left else None


def cleanup(state_dir: str | None, keep_state: bool = False) -> dict[str, Any]:
    """Remove dfagent's nft table, ip rules and table routes (recognised by their markers),
    and dfagent's bits from conntrack marks. Refuses while an agent runs on ``state_dir``."""
    st = state.load(state_dir) if state_dir else {}
    if state_dir:
        agent = state.running_agent(state_dir)
        if agent:
            raise state.AgentRunning(
                f"dfagent (pid {agent.get('pid')}) is running on {state_dir}: stop it first, "
                "or pass --stop-agent"
            )
    nl = Netlink()
    nft = Nft()
    try:
        removed_table = nft.delete_table()
        n_rules = 0
        for r in nl.owned_rules():
            nl.del_rule(r)
            n_rules += 1
        n_routes = 0
        for rt in nl.owned_routes():
            nl.del_route(rt)
            n_routes += 1
        space = space_of(st)
        carried, left, ct_error = _clear_conntrack(space)
        include = st.get("include_file")
        if isinstance(include, str) and os.path.exists(include):
            # the operator's firewall config still includes it: leave it valid and empty
            state.write_atomic(include, EMPTY_INCLUDE)
        removed_state = False
        if state_dir and not keep_state:
            removed_state = state.remove(state_dir)
        return {
            "nft_tables": int(removed_table),
            "rules": n_rules,
            "routes": n_routes,
            "conntrack_marks_cleared": carried - left,
            "conntrack_marks_left": left,
            **({"conntrack_error": ct_error} if ct_error else {}),
            "state_files": int(removed_state),
        }
    finally:
        nl.close()
