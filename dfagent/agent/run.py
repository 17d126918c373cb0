"""`dfagent run --config FILE`: the agent as operators run it, wired from dfagent.yaml.

Route watcher → core → datapath on the agent's loop; for mirror VIPs, receiver → mirror feed
→ the loop's pin batches; the control API on its Unix socket (a client of the loop, like
every other caller); the drain actuator from the config; the metrics endpoint when
``metrics.address`` is set (bound first: a taken port fails the start before anything is
installed). SIGTERM/SIGINT stop gracefully and leave the pins in the datapath; a restart
(after a crash too) adopts them. SIGHUP re-reads the file (:mod:`dfagent.agent.reload`).
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

from dfagent.agent.agent import Agent
from dfagent.agent.control import LinuxControl
from dfagent.agent.linux import build
from dfagent.agent.metrics import ErrorCounter, Metrics, MetricsServer, serve_metrics
from dfagent.agent.mirror import MirrorPath, kernel_query, open_mirror
from dfagent.agent.reload import Reloader
from dfagent.api.server import TcpConfig, serve
from dfagent.backends.frr.drain import FrrDrain
from dfagent.backends.linux.datapath import DatapathConfig, LinuxDatapath
from dfagent.backends.linux.state import AgentLock, default_state_dir
from dfagent.config import Config
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
        record=not mirror or cfg.mirror.record,  # the record: map mode's fallback too
        pin_maps=mirror,
        pin_map_size=cfg.mirror.pin_map_size,
        pin_evict=cfg.mirror.evict,
        pin_timeout=cfg.mirror.pin_timeout,
        space=MarkSpace(lx.mark_mask),
        repair=lx.repair,
        include_file=lx.nft_include or f"{state_dir}/dfagent.nft",
        allow_mark_overlap=lx.allow_mark_overlap,
        one_direction=lx.one_direction,
        notrack=lx.notrack,
        fin_timeout=lx.fin_timeout,
        ct_copy=lx.ct_copy,
        untrack_others=lx.untrack_others,
        syn_untracked=lx.syn_untracked,
        protocols=tuple((v.prefix, v.protocols) for v in cfg.vips if v.protocols != ("tcp",)),
    )


def run(cfg: Config, config_file: str, fixed_log_level: bool = False) -> None:
    """Runs until SIGTERM/SIGINT. Raises (before anything is left half-made) when it cannot
    start: another agent on the state dir, the metrics port, a mark conflict, nft refusing,
    the API socket. ``fixed_log_level``: -v was given, a reload leaves the level alone."""
    if cfg.backend.type == "eos":
        from dfagent.agent.eos import run_eos

        metrics = Metrics(backend="eos", mode="mirror")
        with metrics_endpoint(cfg, metrics):
            run_eos(cfg, config_file, metrics)
        return
    dcfg = datapath_config(cfg)
    metrics = Metrics(backend=cfg.backend.type, mode=dcfg.mode)
    lock = AgentLock(dcfg.state_dir)
    lock.acquire()  # first: a second agent fails on the lock, not on the metrics port
    try:
        with metrics_endpoint(cfg, metrics):
            agent = build(dcfg, metrics)
            try:
                _serve(cfg, config_file, agent, fixed_log_level)
            finally:
                agent.close()
    finally:
        lock.release()


@contextlib.contextmanager
def metrics_endpoint(cfg: Config, metrics: Metrics) -> Iterator[None]:
    """The metrics endpoint (when configured) and the ``*-failed`` log counter, for the run."""
    server: MetricsServer | None = None
    errors = ErrorCounter(metrics)
    logging.getLogger("dfagent").addHandler(errors)
    try:
        if cfg.metrics_address:
            try:
                server = serve_metrics(metrics, cfg.metrics_address)
            except OSError as exc:
                raise OSError(f"metrics.address {cfg.metrics_address}: {exc}") from None
            log.info("metrics address=%s", cfg.metrics_address)
        yield
    finally:
        if server is not None:
            server.close()
        logging.getLogger("dfagent").removeHandler(errors)


def serve_api(cfg: Config, control: Any) -> Any:
    """The control API on the config's Unix socket (and TCP with TLS when configured)."""
    tcp = cfg.api.tcp
    return serve(
        control,
        socket_path=cfg.api.socket,
        tcp=TcpConfig(tcp.address, tcp.tls_cert, tcp.tls_key) if tcp else None,
    )


def _actuator(cfg: Config) -> FrrDrain | None:
    if cfg.drain.actuator == "frr":
        return FrrDrain(cfg.drain.vtysh, cfg.drain.prefix_list_v4, cfg.drain.prefix_list_v6)
    return None


def _serve(cfg: Config, config_file: str, agent: Agent, fixed_log_level: bool) -> None:
    assert isinstance(agent.dp, LinuxDatapath)
    control = LinuxControl(agent, agent.dp, cfg.nexthop_addresses, _actuator(cfg), config_file)
    stop = threading.Event()
    mirror: MirrorPath | None = None
    if "mirror" in cfg.modes():  # bound before the API answers: whoever sees it may mirror
        mirror = open_mirror(cfg, agent, stop, kernel_query=kernel_query(cfg))
    try:
        server = serve_api(cfg, control)
    except BaseException:
        if mirror is not None:
            mirror.close()
        raise

    def apply(new: Config) -> None:
        """Everything built first, then assigned: a failure leaves the running config."""
        actuator = _actuator(new)
        names = {n: tuple(a) for n, a in new.nexthop_addresses.items()}
        level = getattr(logging, new.log.level.upper(), logging.INFO)
        control.names, control.actuator = names, actuator
        agent.opt.reconcile_interval = new.linux.reconcile_interval
        if mirror is not None:
            mirror.apply(new)
        if not fixed_log_level:
            logging.getLogger().setLevel(level)
        agent.resync()  # next-hop names in the metrics and events at once

    reloader = Reloader(config_file, cfg, apply, agent.metrics)

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()
        agent.stop()

    def _hup(signum: int, frame: FrameType | None) -> None:
        agent.post(reloader.reload)

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGHUP, _hup)
    if mirror is not None:
        mirror.start()
    log.info("api socket=%s config=%s", cfg.api.socket, config_file)
    try:
        agent.run()
    finally:
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        stop.set()
        control.bus.close_all()
        server.stop(grace=1.0)
        if mirror is not None:
            mirror.close()
