"""The mirror shim on its own node: a namespace joined to the lab's router by a veth, as a
switch's mirror sessions reach a collector over a real link.

The shim's packet sockets are opened in the router's namespace (they stand for the switch's
egress ports), its GRE sender lives on the node: every mirrored SYN crosses the veth to the
agent's receiver on the router. The namespace is recorded as a node of the lab run *before*
it is made, so `dfagent lab down` (and a later bench's clean start) removes it after a crash.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from dfagent.lab import mirror_shim, netns
from dfagent.lab.errors import LabError
from dfagent.lab.retry import wait_until
from dfagent.lab.state import LabState

NODE = "mirror"
ROUTER_IF, NODE_IF = "mir0", "eth0"
# TEST-NET-1, unused by the labs: the router's end (the collector) and the shim's (the source)
COLLECTOR, SOURCE = "192.0.2.1", "192.0.2.2"


def add(state: LabState, router: str) -> str:
    """The node, linked to ``router``; returns its namespace."""
    ns = state.netns_for(NODE)
    state.namespaces[NODE] = ns
    state.save()
    router_ns = state.namespaces[router]
    netns.add_netns(ns)
    netns.add_veth(router_ns, ROUTER_IF, ns, NODE_IF)
    netns.run(["ip", "-n", router_ns, "addr", "add", f"{COLLECTOR}/30", "dev", ROUTER_IF])
    netns.run(["ip", "-n", ns, "addr", "add", f"{SOURCE}/30", "dev", NODE_IF])
    ping = netns.ns_argv(ns, ["ping", "-c1", "-W1", "-q", COLLECTOR])
    wait_until(
        lambda: subprocess.run(ping, capture_output=True).returncode == 0,
        10,
        0.1,
        f"the mirror node reaching {COLLECTOR} over the veth",
    )
    return ns


def remove(state: LabState) -> None:
    """The node and its veth (idempotent); the run's record forgets it."""
    ns = state.namespaces.pop(NODE, None)
    if ns is not None:
        netns.delete_netns(ns)  # its end of the veth goes, and so the router's
        state.save()


def spawn(
    state: LabState, router: str, members: dict[str, int], log_path: Path, **opts: object
) -> subprocess.Popen[bytes]:
    """The shim on the mirror node (made if missing), capturing ``router``'s member ports
    and sending to the router's end of the veth; returns once it is ready."""
    if NODE not in state.namespaces:
        add(state, router)
    ns = state.namespaces[NODE]
    try:
        return mirror_shim.spawn(
            lambda argv: netns.ns_argv(ns, [*argv, "--capture-netns", state.namespaces[router]]),
            members,
            log_path,
            collector=COLLECTOR,
            **opts,  # type: ignore[arg-type]
        )
    except RuntimeError as exc:
        raise LabError(str(exc)) from exc
