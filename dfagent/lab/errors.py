"""Errors the lab runner reports to people: each says what is wrong and where."""

from __future__ import annotations


class LabError(Exception):
    """A lab operation failed; the message says what to fix."""


class TopologyError(LabError):
    """A topology file is invalid; carries every problem found, each with its path."""

    def __init__(self, source: str, problems: list[tuple[str, str]]):
        self.source = source
        self.problems = problems
        lines = [f"{source}: {len(problems)} problem(s):"]
        lines += [f"  {path or '<root>'}: {msg}" for path, msg in problems]
        super().__init__("\n".join(lines))
