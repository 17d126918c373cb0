"""Wiring of the agent on a Linux router: routes from netlink, the nftables datapath, hints
from rtnetlink and from nftables, and (map mode) the pin sink the mirror path feeds."""

from __future__ import annotations

from dfagent.agent.agent import Agent, AgentOptions
from dfagent.agent.metrics import Metrics
from dfagent.backends.linux.ctmark import CtMarker
from dfagent.backends.linux.datapath import DatapathConfig, LinuxDatapath
from dfagent.backends.linux.mapmode import MapPinner
from dfagent.backends.linux.nftevents import NftEvents
from dfagent.routes.linux import LinuxRoutes


def build(cfg: DatapathConfig, metrics: Metrics | None = None) -> Agent:
    """An agent over a started datapath (start() raises before anything is left behind)."""
    dp = LinuxDatapath(cfg, routes=LinuxRoutes)
    assert isinstance(dp.routes, LinuxRoutes)
    hints = dp.routes.watch()  # subscribed before the first read: no change falls between
    try:
        dp.start()
    except BaseException:
        hints.close()
        dp.close()
        raise
    pinner = None
    if cfg.pin_maps:
        pinner = MapPinner(
            dp.nft,
            dp.resolve_mark,
            timeout=cfg.pin_timeout,
            one_direction=cfg.one_direction,
            space=cfg.space,
            marker=None if cfg.one_direction else CtMarker(cfg.space.mask),
            # a full map evicts its oldest pins (conntrack mode) when asked
            capacity=cfg.pin_map_size if cfg.pin_evict else None,
        )
    return Agent(
        dp,
        route_hints=hints,
        datapath_hints=NftEvents() if cfg.repair else None,
        options=AgentOptions(reconcile_interval=cfg.reconcile_interval, repair=cfg.repair),
        pinner=pinner,
        metrics=metrics or Metrics(backend="linux", mode=cfg.mode),
    )
