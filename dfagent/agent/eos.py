"""`dfagent run` with ``backend: eos``: the one agent loop driving an Arista switch over eAPI.

Mirror receiver → feed → the loop's pin batches → :class:`EosDatapath` (the pin table and
the switch's one session); periodic passes reconcile the switch; the control API and the
drain actuator (the switch's BGP policy) as with the Linux backend. The backend asks for a
later flush (rate limit, switch down) through :class:`LoopTimer`, which only posts the flush
to the loop: nothing but the loop touches the backend.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType

from dfagent.agent.agent import Agent, AgentOptions
from dfagent.agent.eos_control import EosControl
from dfagent.agent.metrics import Metrics
from dfagent.agent.mirror import open_mirror
from dfagent.backends.eos.backend import EosBackend
from dfagent.backends.eos.datapath import EosDatapath
from dfagent.backends.eos.drain import EosDrain
from dfagent.backends.eos.factory import build_backend, drain_spec
from dfagent.backends.eos.session import EosSession
from dfagent.config import Config
from dfagent.core.ports import DrainActuator

log = logging.getLogger("dfagent.run")


class LoopTimer:
    """``timer(delay)``: post ``fn`` to the agent's loop after ``delay`` seconds; one timer
    at a time (an earlier one already pending covers a later request)."""

    def __init__(self, agent: Agent, fn: Callable[[], None]) -> None:
        self.agent = agent
        self.fn = fn
        self._lock = threading.Lock()
        self._due: float | None = None
        self._timer: threading.Timer | None = None

    def __call__(self, delay: float) -> None:
        due = self.agent.clock() + delay
        with self._lock:
            if self._due is not None and self._due <= due:
                return
            if self._timer is not None:
                self._timer.cancel()
            self._due = due
            self._timer = threading.Timer(delay, self._fire)
            self._timer.daemon = True
            self._timer.start()

    def _fire(self) -> None:
        with self._lock:
            self._due = None
            self._timer = None
        self.agent.post(self.fn)

    def cancel(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self._due = None


class Coalescer:
    """Posts one flush to the loop behind the pin batches already queued (called on the loop,
    so no lock): under load, the micro-batches waiting there go out in one request."""

    def __init__(self, agent: Agent, fn: Callable[[], None]) -> None:
        self.agent = agent
        self.fn = fn
        self.pending = False

    def __call__(self) -> None:
        if not self.pending:
            self.pending = True
            self.agent.post(self._run)

    def _run(self) -> None:
        self.pending = False
        self.fn()


def drain_actuator(cfg: Config, session: EosSession) -> DrainActuator | None:
    spec = drain_spec(cfg)
    return EosDrain(session, spec) if spec is not None else None


def build_eos(
    cfg: Config, backend: EosBackend | None = None, metrics: Metrics | None = None
) -> tuple[Agent, EosDatapath, DrainActuator | None]:
    """An agent over a started EOS datapath (raises EosError when the switch cannot be used)."""
    eos = cfg.backend.eos
    if eos is None:
        raise ValueError("backend.type is not eos")
    backend = backend or build_backend(cfg)
    actuator = drain_actuator(cfg, backend.session)
    dp = EosDatapath(backend, cfg.nexthop_addresses, actuator.drained if actuator else None)
    dp.start()
    agent = Agent(
        dp,
        options=AgentOptions(reconcile_interval=eos.reconcile_interval, repair=False),
        pinner=dp,
        metrics=metrics,
    )
    backend.schedule = LoopTimer(agent, backend.flush)
    backend.coalesce = Coalescer(agent, backend.flush)
    return agent, dp, actuator


def run_eos(cfg: Config, config_file: str, metrics: Metrics | None = None) -> None:
    from dfagent.agent.run import serve_api  # run imports this module lazily: no cycle

    agent, dp, actuator = build_eos(cfg, metrics=metrics)
    control = EosControl(agent, dp, cfg.nexthop_addresses, actuator, config_file)
    stop = threading.Event()
    # the receiver is bound before the API answers: a caller that sees the socket may mirror
    try:
        mirror = open_mirror(cfg, agent, stop, query=dp.backend.egress is not None)
    except BaseException:
        agent.close()
        raise
    try:
        server = serve_api(cfg, control)
    except BaseException:
        mirror.close()
        agent.close()
        raise

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()
        agent.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    mirror.start()
    log.info("api socket=%s config=%s switch=%s prefix=%s", cfg.api.socket, config_file,
             dp.backend.name, dp.backend.prefix)  # fmt: skip
    try:
        agent.run()
    finally:
        stop.set()
        timer = dp.backend.schedule
        if isinstance(timer, LoopTimer):
            timer.cancel()
        control.bus.close_all()
        server.stop(grace=1.0)
        mirror.close()
        agent.close()
