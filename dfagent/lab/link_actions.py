"""Actions on a running lab's cabling, for `do:` steps in lab.yaml: take a node's links down
and up, or move a cable to another node (a VM re-attached to another hypervisor, a leaf
recabled). They act on one end of each veth, as pulling a cable or shutting a port would.
"""

from __future__ import annotations

from dfagent.lab import netns
from dfagent.lab.checks import StepContext
from dfagent.lab.errors import LabError


def _ports(ctx: StepContext, node: str) -> list[str]:
    topo = ctx.lab.topology
    if node not in topo.nodes:
        raise LabError(f"no node {node!r}")
    ports = [lk.a.iface for lk in topo.links if lk.a.node == node]
    return ports + [lk.b.iface for lk in topo.links if lk.b.node == node]


def _set_links(ctx: StepContext, node: str, state: str) -> list[str]:
    for port in _ports(ctx, node):
        netns.run(["ip", "-n", ctx.ns(node), "link", "set", port, state])
    return []


def links_down(ctx: StepContext, node: str) -> list[str]:
    """Every cabled port of `node` goes down (its peers see the carrier go)."""
    return _set_links(ctx, node, "down")


def links_up(ctx: StepContext, node: str) -> list[str]:
    return _set_links(ctx, node, "up")


def move_link(ctx: StepContext, node: str, iface: str, to: str) -> list[str]:
    """Unplug `node:iface` from whatever it is cabled to and plug it into `to` ("peer:port"):
    the old veth pair is deleted, a new one made, both ends up. Addresses on the new ends are
    the lab's business (exec steps), as they would be an orchestrator's."""
    peer, _, port = to.partition(":")
    if not port or peer not in ctx.state.namespaces:
        raise LabError(f"move_link: {to!r} is not an existing 'node:port'")
    netns.run(["ip", "-n", ctx.ns(node), "link", "del", iface])
    netns.add_veth(ctx.ns(node), iface, ctx.ns(peer), port)
    return []
