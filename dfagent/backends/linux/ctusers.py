"""Who else on this router needs conntrack (so dfagent must not switch it off for them).

dfagent leaves traffic that is not for a VIP out of the conntrack table (``notrack`` at raw
priority, :func:`dfagent.backends.linux.ruleset.render_untrack`) — but only when nothing
else in the namespace relies on that table: a stateful firewall (``ct state established
accept``), NAT, connmark users, helpers, flowtables, ``iptables-nft`` conntrack/state
matches. Untracking their traffic would break them, so :func:`find` lists every such user,
and the agent then leaves tracking alone and says why.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dfagent.backends.linux.nft import NftHandle
from dfagent.backends.linux.ruleset import TABLE

# statements that need a conntrack entry to work
_STATEFUL = ("masquerade", "snat", "dnat", "redirect", "ct helper", "ct timeout",
             "ct expectation", "ct count", "flow", "synproxy")  # fmt: skip
# iptables-nft matches and targets (nft JSON "xt") that read or write conntrack
_XT = ("conntrack", "state", "connmark", "CONNMARK", "MASQUERADE", "SNAT", "DNAT", "CT",
       "REDIRECT", "connlimit", "helper", "NETMAP", "SYNPROXY")  # fmt: skip
LEGACY_TABLES = "/proc/net/ip_tables_names"


def _uses_ct(node: Any) -> str | None:
    """The first conntrack-dependent thing in a rule's expression tree (nft JSON)."""
    if isinstance(node, dict):
        for key, val in node.items():
            if key == "ct":
                return f"ct {val.get('key', '')}".strip() if isinstance(val, dict) else "ct"
            if key in _STATEFUL:
                return key
            if key == "xt" and isinstance(val, dict) and val.get("name") in _XT:
                return f"xt {val.get('type', '')} {val.get('name')}"
            found = _uses_ct(val)
            if found:
                return found
    elif isinstance(node, list):
        for item in node:
            found = _uses_ct(item)
            if found:
                return found
    return None


def from_ruleset(items: list[dict[str, Any]]) -> list[str]:
    """Conntrack users in a (terse) ``nft -j list ruleset``, dfagent's table excepted."""
    out: list[str] = []
    for item in items:
        chain = item.get("chain")
        if chain and chain.get("table") != TABLE and chain.get("type") == "nat":
            out.append(f"nft nat chain {chain.get('family')} {chain.get('table')} {chain['name']}")
        if item.get("flowtable") and item["flowtable"].get("table") != TABLE:
            ft = item["flowtable"]
            out.append(f"nft flowtable {ft.get('family')} {ft.get('table')} {ft.get('name')}")
        rule = item.get("rule")
        if not rule or rule.get("table") == TABLE:
            continue
        what = _uses_ct(rule.get("expr") or [])
        if what:
            out.append(
                f"nft rule in {rule.get('family')} {rule.get('table')} chain {rule.get('chain')}"
                f" (handle {rule.get('handle')}) uses {what}"
            )
    return out


def legacy_tables(path: str = LEGACY_TABLES) -> list[str]:
    """Legacy iptables tables loaded in this namespace: dfagent cannot read their rules
    (a ``-m state`` in filter, NAT), so any of them counts as a conntrack user."""
    try:
        names = Path(path).read_text().split()
    except OSError:
        return []
    return [f"iptables-legacy table {n} (rules not readable by dfagent)" for n in names]


def find(nft: NftHandle) -> list[str]:
    """Every other conntrack user of this namespace, one line each (empty: none)."""
    return from_ruleset(nft.run_json("list ruleset", terse=True)) + legacy_tables()
