"""Where next hops come from on a Linux router: the kernel's routing table (rtnetlink).

:class:`LinuxRoutes` reads, for every VIP, the ECMP set of the route the kernel would use
(multipath routes and nexthop-object groups alike) and whether each next hop is alive (link,
carrier, neighbour state; the policy is :class:`dfagent.core.liveness.Liveness`). Change
notifications come from :class:`dfagent.backends.linux.netlink.RouteEvents` (hints only: the
agent's periodic pass is the safety net).
"""

from __future__ import annotations

from collections.abc import Iterable

from dfagent.backends.linux.netlink import Netlink, RouteEvents
from dfagent.core.liveness import Liveness
from dfagent.core.nexthops import IPNetwork, NextHop
from dfagent.core.ports import RouteView


class LinuxRoutes:
    def __init__(self, nl: Netlink) -> None:
        self.nl = nl
        self.liveness = Liveness()
        self._neigh: dict[tuple[int, str], int] = {}

    def observe(self, vips: Iterable[IPNetwork]) -> RouteView:
        """One link dump, one neighbour dump, one route lookup per VIP."""
        self.nl.refresh_names()
        self._neigh = self.nl.neighbour_states()
        current = {str(v): self.nl.ecmp_set(v) for v in vips}
        return RouteView(current, self.alive)

    def alive(self, nh: NextHop) -> bool:
        idx = self.nl.ifindex(nh.ifname)
        link_ok = idx is not None and self.nl.link_up(nh.ifname)
        state = self._neigh.get((idx, nh.gateway)) if idx is not None else None
        return self.liveness.judge(nh, link_ok, state)

    @staticmethod
    def hints() -> RouteEvents:
        return RouteEvents()


__all__ = ["LinuxRoutes", "RouteEvents"]
