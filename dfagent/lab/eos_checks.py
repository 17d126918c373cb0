"""Lab checks of an arista_ceos node played by the eAPI test switch (lab.yaml `call:`)."""

from __future__ import annotations

from dfagent.lab import eos_switch
from dfagent.lab.checks import StepContext
from dfagent.lab.errors import LabError


def eapi_switch_up(ctx: StepContext, node: str, sessions: list[str]) -> list[str]:
    """The node's switch answers eAPI (pyeapi, its startup-config's user) and runs the
    startup-config: DirectFlow on, these monitor sessions with a GRE destination."""
    try:
        version, running = eos_switch.run_cmds(
            ctx.state, node, ["show version", "show running-config"], "text"
        )
    except LabError as exc:
        return [str(exc)]
    problems = []
    if "Arista" not in version["output"]:
        problems.append(f"{node}: show version: {version['output'][:80]!r}")
    text = running["output"]
    for s in sessions:
        if f"monitor session {s} destination tunnel mode gre" not in text:
            problems.append(f"{node}: no GRE destination for monitor session {s}")
    if "directflow\n   no shutdown" not in text:
        problems.append(f"{node}: DirectFlow is not on")
    return problems
