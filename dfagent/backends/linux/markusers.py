"""Other users of the packet and connection mark on this router, and the bits they touch.

dfagent writes only its own field of the mark; another tool that writes or compares bits of
that field (a mangle rule, an ``ip rule fwmark``) would silently unpin or mis-route pinned
connections. :func:`conflicts` finds them before anything is installed, so start-up can
refuse with a message that names each one.
"""

from __future__ import annotations

from typing import Any

from dfagent.backends.linux.nft import NftHandle
from dfagent.backends.linux.ruleset import TABLE

ALL = 0xFFFFFFFF
MARK_KEYS = ({"meta": {"key": "mark"}}, {"ct": {"key": "mark"}})


def written_bits(value: Any) -> int:
    """Bits of the mark a ``mangle`` value expression may change (nft JSON)."""
    if isinstance(value, dict) and len(value) == 1:
        op, args = next(iter(value.items()))
        if op in ("|", "^") and isinstance(args, list) and len(args) == 2:
            inner, const = args
            if isinstance(const, int):
                return (const | written_bits_of_inner(inner)) & ALL
        if op == "&" and isinstance(args, list) and len(args) == 2:
            inner, const = args
            if isinstance(const, int):
                return (~const | written_bits_of_inner(inner)) & ALL
    return ALL  # a constant or a value from elsewhere replaces every bit


def written_bits_of_inner(inner: Any) -> int:
    """The left side of ``mark <op> const``: the mark itself keeps its bits (0 written)."""
    if inner in MARK_KEYS:
        return 0
    return written_bits(inner)


def nft_writers(nft: NftHandle) -> list[tuple[str, int]]:
    """(where, bits) for every rule outside dfagent's table that sets meta or ct mark."""
    out: list[tuple[str, int]] = []
    for item in nft.run_json("list ruleset", terse=True):
        rule = item.get("rule")
        if not rule or rule.get("table") == TABLE:
            continue
        for stmt in rule.get("expr") or []:
            mangle = stmt.get("mangle") if isinstance(stmt, dict) else None
            if not mangle or mangle.get("key") not in MARK_KEYS:
                continue
            what = "ct mark" if "ct" in mangle["key"] else "meta mark"
            where = (
                f"nft rule in {rule.get('family')} {rule.get('table')} chain {rule.get('chain')}"
                f" (handle {rule.get('handle')}) sets {what}"
            )
            out.append((where, written_bits(mangle.get("value"))))
    return out


def rule_readers(rules: list[tuple[int, int, int, int]]) -> list[tuple[str, int]]:
    """(where, bits) for ``ip rule``s that compare the mark: (family, priority, mark, mask)."""
    out = []
    for fam, prio, mark, mask in rules:
        if mark or (mask and mask != ALL):
            out.append((f"ip -{fam} rule priority {prio} fwmark 0x{mark:x}/0x{mask:x}", mask))
    return out


def conflicts(users: list[tuple[str, int]], field: int) -> list[str]:
    return [
        f"{where}: overlaps dfagent's mark bits 0x{field:08x} in 0x{bits & field:08x}"
        for where, bits in users
        if bits & field
    ]
