"""`dfagent run --config FILE`: the agent as operators run it, wired from dfagent.yaml.

Route watcher → core → datapath on the agent's loop; for mirror VIPs, receiver → mirror feed
→ the loop's pin batches; the control API on its Unix socket (a client of the loop, like
every other caller); the drain actuator from the config. SIGTERM/SIGINT stop gracefully and
leave the pins in the datapath; a restart (after a crash too) adopts them.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

from dfagent.agent.agent import Agent
from dfagent.agent.control import LinuxControl
from dfagent.agent.linux import build
from dfagent.agent.mirror import MirrorFeed
from dfagent.api.server import TcpConfig, serve
from dfagent.backends.frr.drain import FrrDrain
from dfagent.backends.linux.datapath import DatapathConfig, LinuxDatapath
from dfagent.backends.linux.state import AgentLock, default_state_dir
from dfagent.config import Config
from dfagent.core.egress import EgressResolver
from dfagent.core.marks import MarkSpace

log = logging.getLogger("dfagent.run")


def datapath_config(cfg: Config) -> DatapathConfig:
    lx = cfg.linux
    mirror = "mirror" in cfg.modes()
    state_dir = lx.state_dir or default_state_dir()
    return DatapathConfig(
        tuple(v.prefix for v in cfg.vips),
        state_dir=state_dir,
        reconcile_interval=lx.reconcile_interval,
        gc_grace=lx.gc_grace,
        dead_hold=lx.dead_hold,
        record=not mirror,
        pin_maps=mirror,
        pin_map_size=cfg.mirror.pin_map_size,
        pin_timeout=cfg.mirror.pin_timeout,
        space=MarkSpace(lx.mark_mask),
        repair=lx.repair,
        include_file=lx.nft_include or f"{state_dir}/dfagent.nft",
        allow_mark_overlap=lx.allow_mark_overlap,
        one_direction=lx.one_direction,
        notrack=lx.notrack,
        fin_timeout=lx.fin_timeout,
        protocols=tuple((v.prefix, v.protocols) for v in cfg.vips if v.protocols != ("tcp",)),
    )


def run(cfg: Config, config_file: str) -> None:
    """Runs until SIGTERM/SIGINT. Raises (before anything is left half-made) when it cannot
    start: another agent on the state dir, a mark conflict, nft refusing, the API socket."""
    dcfg = datapath_config(cfg)
    lock = AgentLock(dcfg.state_dir)
    lock.acquire()
    try:
        agent = build(dcfg)
        try:
            _serve(cfg, config_file, agent)
        finally:
            agent.close()
    finally:
        lock.release()


def _serve(cfg: Config, config_file: str, agent: Agent) -> None:
    assert isinstance(agent.dp, LinuxDatapath)
    actuator = None
    if cfg.drain.actuator == "frr":
        actuator = FrrDrain(cfg.drain.vtysh, cfg.drain.prefix_list_v4, cfg.drain.prefix_list_v6)
    control = LinuxControl(agent, agent.dp, cfg.nexthop_addresses, actuator, config_file)
    tcp = cfg.api.tcp
    server = serve(
        control,
        socket_path=cfg.api.socket,
        tcp=TcpConfig(tcp.address, tcp.tls_cert, tcp.tls_key) if tcp else None,
    )
    stop = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()
        agent.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    threads: list[threading.Thread] = []
    receiver = None
    if "mirror" in cfg.modes():
        from dfagent.mirror.receiver import MirrorReceiver

        sessions = {sid: cfg.session_nexthop(sid) or "" for sid in cfg.mirror.sessions}
        sources = None if cfg.mirror.any_source else list(cfg.mirror.sources)
        receiver = MirrorReceiver(sources)
        receiver.open()
        egress = EgressResolver(sessions, vips=tuple(v.prefix for v in cfg.vips))
        batch = cfg.mirror.batch
        feed = MirrorFeed(agent, receiver, egress, batch.max_items, batch.max_delay_ms / 1000)
        threads = [
            threading.Thread(target=receiver.run, args=(stop,), name="mirror", daemon=True),
            threading.Thread(target=feed.run, args=(stop,), name="feed", daemon=True),
        ]
        for t in threads:
            t.start()
    log.info("api socket=%s config=%s", cfg.api.socket, config_file)
    try:
        agent.run()
    finally:
        stop.set()
        control.bus.close_all()
        server.stop(grace=1.0)
        for t in threads:
            t.join(5)
        if receiver is not None:
            receiver.close()
