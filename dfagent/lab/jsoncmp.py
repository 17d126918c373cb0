"""JSON-subset comparison for lab checks (as FRR's topotests do with `show … json`).

`expected` matches `actual` when every key of an expected object is present in the actual
object with a matching value, and every element of an expected list matches a *distinct*
element of the actual list, in any order. With `exact_lists`, lists must also be the same
length (so "exactly two next hops" can be said). Returns the mismatches with their paths.
"""

from __future__ import annotations

from typing import Any


def json_diff(expected: Any, actual: Any, exact_lists: bool = False, path: str = "$") -> list[str]:
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{path}: expected an object, saw {_short(actual)}"]
        problems = []
        for key, want in expected.items():
            if key not in actual:
                problems.append(f"{path}.{key}: missing (expected {_short(want)})")
            else:
                problems += json_diff(want, actual[key], exact_lists, f"{path}.{key}")
        return problems
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return [f"{path}: expected a list, saw {_short(actual)}"]
        if exact_lists and len(expected) != len(actual):
            return [f"{path}: expected {len(expected)} element(s), saw {len(actual)}"]
        return _match_list(expected, actual, exact_lists, path)
    if expected != actual:
        return [f"{path}: expected {_short(expected)}, saw {_short(actual)}"]
    return []


def _match_list(expected: list[Any], actual: list[Any], exact: bool, path: str) -> list[str]:
    """Greedy distinct matching; enough for check expectations, which are small."""
    free = list(range(len(actual)))
    problems = []
    for i, want in enumerate(expected):
        hit = next((j for j in free if not json_diff(want, actual[j], exact)), None)
        if hit is None:
            problems.append(f"{path}[{i}]: no element matches {_short(want)}")
        else:
            free.remove(hit)
    return problems


def _short(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"
