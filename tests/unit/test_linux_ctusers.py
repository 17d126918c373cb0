"""Other conntrack users found in `nft -j list ruleset` (fast; the real kernel is in
tests/lab/test_synflood.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dfagent.backends.linux import ctusers


def rule(table: str, expr: list[Any], chain: str = "c") -> dict[str, Any]:
    return {"rule": {"family": "inet", "table": table, "chain": chain, "handle": 4, "expr": expr}}


CT_STATE = {"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established"]}}
COUNTER = {"counter": None}


@pytest.mark.parametrize(
    ("items", "found"),
    [
        ([rule("fw", [CT_STATE, {"accept": None}])], "inet fw chain c (handle 4) uses ct state"),
        ([rule("fw", [{"masquerade": None}])], "uses masquerade"),
        ([rule("fw", [{"xt": {"type": "match", "name": "conntrack"}}])], "uses xt match conntrack"),
        ([{"chain": {"family": "ip", "table": "nat", "name": "post", "type": "nat"}}],
         "nft nat chain ip nat post"),
        ([{"flowtable": {"family": "inet", "table": "f", "name": "ft"}}],
         "nft flowtable inet f ft"),
        ([rule("fw", [{"mangle": {"key": {"ct": {"key": "mark"}}, "value": 1}}])], "uses ct mark"),
    ],
)  # fmt: skip
def test_conntrack_users_are_named(items: list[dict[str, Any]], found: str) -> None:
    got = ctusers.from_ruleset(items)
    assert len(got) == 1 and found in got[0], got


def test_dfagent_and_stateless_rules_are_not_users() -> None:
    items: list[dict[str, Any]] = [
        rule("dfagent", [CT_STATE]),  # its own table
        rule("fw", [COUNTER, {"xt": {"type": "target", "name": "LOG"}}]),
        {"chain": {"family": "inet", "table": "fw", "name": "in", "type": "filter"}},
        rule("fw", [{"match": {"op": "==", "left": {"meta": {"key": "mark"}}, "right": 1}}]),
    ]
    assert ctusers.from_ruleset(items) == []


def test_legacy_tables(tmp_path: Path) -> None:
    p = tmp_path / "names"
    p.write_text("filter\nnat\n")
    assert len(ctusers.legacy_tables(str(p))) == 2
    assert ctusers.legacy_tables(str(tmp_path / "absent")) == []
