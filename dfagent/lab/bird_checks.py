"""Checks of BIRD nodes. BIRD has no JSON output: `birdc show protocols` is a table, one
protocol a line (name, proto, table, state, since, info); parsed here in one place."""

from __future__ import annotations

from dfagent.lab.checks import RunsCommands


def parse_protocols(text: str) -> dict[str, tuple[str, str]]:
    """`birdc show protocols` → {name: (state, info)}, e.g. ("up", "Established")."""
    out = {}
    for line in text.splitlines():
        cols = line.split()
        if len(cols) >= 5 and cols[1] in ("BGP", "Static", "Kernel", "Device", "Direct"):
            out[cols[0]] = (cols[3], " ".join(cols[5:]))
    return out


def sessions_established(ctx: RunsCommands, nodes: list[str], protocols: list[str]) -> list[str]:
    """Every BGP protocol named in `protocols` is up and Established on every node."""
    problems = []
    for node in nodes:
        seen = parse_protocols(ctx.run(node, "birdc show protocols"))
        for name in protocols:
            state, info = seen.get(name, ("missing", ""))
            if state != "up" or "Established" not in info:
                problems.append(f"{node}: protocol {name} is {state} {info}".rstrip())
    return problems
