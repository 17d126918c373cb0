"""The agent: the one owner of dfagent's state, and its one loop.

Everything that changes the datapath runs on the loop's thread: reconcile passes (woken by
route hints, or periodic), repairs (woken by nftables hints), pin batches (from the mirror
receiver's thread), and the operations other threads ask for (drain, undrain, resync, purge,
reload — the gRPC servicer's calls). Other threads never touch the datapath: they
:meth:`Agent.call` a function, which is queued, run on the loop, and its result (or
exception) handed back.

The one slow read, the conntrack count (a kernel dump: seconds at a million entries), runs in
a worker thread; its result comes back to the loop as an operation, so a count never delays
a pin batch or a route change.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import select
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar

from dfagent.agent.metrics import Metrics
from dfagent.core.pinning import Event
from dfagent.core.ports import Datapath, Hints, PinSink

log = logging.getLogger("dfagent.agent")
T = TypeVar("T")
# notifications that arrive together (a route replace, a neighbour and its routes) are
# applied in one pass; each carries a whole ECMP set, so a short wait is enough
DEBOUNCE = 0.01
OPS_BUDGET = 0.2  # seconds of queued operations per loop round, then routes and passes


@dataclass
class AgentOptions:
    reconcile_interval: float = 5.0
    repair: bool = True  # check (and repair) the datapath on every hint and every pass


class Agent:
    def __init__(
        self,
        datapath: Datapath,
        route_hints: Hints | None = None,
        datapath_hints: Hints | None = None,
        options: AgentOptions | None = None,
        pinner: PinSink | None = None,
        clock: Callable[[], float] = time.monotonic,
        metrics: Metrics | None = None,
    ) -> None:
        self.dp = datapath
        self.route_hints = route_hints
        self.datapath_hints = datapath_hints
        self.opt = options or AgentOptions()
        self.pinner = pinner
        self.clock = clock
        self.metrics = metrics or Metrics()
        self._ops: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any] | None]] = (
            queue.SimpleQueue()
        )
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        # reentrant: signal handlers (SIGTERM, SIGHUP) wake the loop from the main thread,
        # possibly while a handler there already holds it
        self._pipe_lock = threading.RLock()
        self._closed = False
        self._stop = threading.Event()
        self._counting = False
        self.started_at = time.time()
        self.passes = 0
        self.on_pass: list[Callable[[Agent], None]] = []  # run on the loop after each pass
        self.last_events: list[Event] = []
        self.last_count_at = -1.0  # when the last applied pin count began (agent clock)
        self.metrics.queue_depth["agent"] = self._ops.qsize

    # ── other threads ───────────────────────────────────────────────────────────
    def submit(self, fn: Callable[[], T]) -> Future[T]:
        """Run ``fn`` on the loop; the future holds its result or exception."""
        fut: Future[T] = Future()
        self._ops.put((fn, fut))
        self._wake()
        return fut

    def call(self, fn: Callable[[], T], timeout: float = 30.0) -> T:
        """:meth:`submit` and wait (from any thread but the loop's)."""
        return self.submit(fn).result(timeout)

    def post(self, fn: Callable[[], Any]) -> None:
        """Run ``fn`` on the loop, nobody waiting (pin batches: errors are logged)."""
        self._ops.put((fn, None))
        self._wake()

    def pin(self, batch: Iterable[Any], received: Sequence[float] = ()) -> None:
        """A micro-batch of pins from the mirror path, applied on the loop; ``received``: each
        pin's SYN read time (``time.monotonic()``), for the SYN → pin latency."""
        if self.pinner is None:
            raise RuntimeError("this agent has no pin sink (not in map mode)")
        items = list(batch)
        stamps = tuple(received)
        pinner = self.pinner

        def apply() -> None:
            result = pinner.pin(items)
            self.metrics.pin_batch(result, stamps, time.monotonic())

        self.post(apply)

    def stop(self) -> None:
        self._stop.set()
        self._wake()

    def _wake(self) -> None:
        with self._pipe_lock:  # never write to a closed (maybe reused) descriptor
            if self._closed:
                return
            with contextlib.suppress(BlockingIOError):  # a full pipe: the loop is awake
                os.write(self._wake_w, b"x")

    # ── the loop ────────────────────────────────────────────────────────────────
    def run(self) -> None:
        try:
            t0 = time.monotonic()
            self._pass(periodic=True)
            # where a start's time goes: the process (interpreter, imports, build) and the
            # first pass (check and repair, observe, apply); the API answers after it. The
            # CPU the process used so far says what a busy machine's wall time cannot.
            log.info(
                "ready first_pass_ms=%.1f since_process_start_ms=%s cpu_ms=%.0f",
                (time.monotonic() - t0) * 1000,
                _process_age_ms(),
                time.process_time() * 1000,
            )
            next_periodic = self.clock() + self.opt.reconcile_interval
            more = False
            while not self._stop.is_set():
                fds: list[Any] = [self._wake_r]
                fds += [h for h in (self.route_hints, self.datapath_hints) if h is not None]
                timeout = 0.0 if more else max(0.0, min(next_periodic - self.clock(), 0.5))
                ready, _, _ = select.select(fds, [], [], timeout)
                if self._wake_r in ready:
                    self._drain_wake()
                # bounded: a steady stream of pin batches must not starve route changes,
                # repairs and the periodic pass (it did: no pass for minutes under load)
                more = self._run_ops(OPS_BUDGET)
                dh, rh = self.datapath_hints, self.route_hints
                if dh is not None and dh in ready and dh.pending():
                    self._repair()  # a firewall reload: at once, no debounce
                changed = rh is not None and rh in ready and rh.pending()
                if changed and rh is not None:
                    time.sleep(DEBOUNCE)
                    rh.pending()
                periodic = self.clock() >= next_periodic
                if changed or periodic:
                    self._pass(periodic)
                    if periodic:
                        next_periodic = self.clock() + self.opt.reconcile_interval
        finally:
            self._run_ops()
            log.info("stop passes=%d", self.passes)

    def _pass(self, periodic: bool, pinned: dict[int, int] | None = None) -> None:
        if periodic and self.opt.repair:
            self._repair()  # the safety net for lost nftables events
        self.last_events = self.dp.reconcile(pinned=pinned, count=False)
        self.passes += 1
        self.metrics.passes += 1
        if periodic or self.dp.wants_count():
            self._count_in_background()
        for cb in self.on_pass:
            cb(self)

    def resync(self) -> None:
        """A full pass now (on the loop): check and repair, observe, apply, count."""
        self._pass(periodic=True)

    def request_count(self) -> None:
        """Count pins in the background now (e.g. someone waits for a drain to finish)."""
        self._count_in_background()

    def _repair(self) -> None:
        if not self.opt.repair:
            return
        try:
            if self.dp.check_and_repair():
                self.metrics.repairs += 1
        except Exception as exc:  # a failed check must not stop the loop
            log.error("check-failed error=%r", exc)

    def _count_in_background(self) -> None:
        if self._counting:
            return
        self._counting = True
        started = self.clock()

        def work() -> None:
            try:
                counts = self.dp.count_pins()
            except Exception as exc:  # never GC on a failed count
                log.warning("count-failed error=%r", exc)
                self.post(self._count_done)
                return
            self.post(lambda: self._count_done(counts, started))

        threading.Thread(target=work, name="count", daemon=True).start()

    def _count_done(self, counts: dict[int, int] | None = None, started: float = 0.0) -> None:
        self._counting = False
        if counts is not None:
            self.last_count_at = started  # the counts describe the kernel as of then
        if counts is not None and not self._stop.is_set():
            self._pass(periodic=False, pinned=counts)

    def _drain_wake(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(self._wake_r, 4096):
                pass

    def _run_ops(self, budget: float | None = None) -> bool:
        """Run queued operations, for at most ``budget`` seconds (None: until none is left).
        Returns whether some are left."""
        end = None if budget is None else time.monotonic() + budget
        while True:
            if end is not None and time.monotonic() >= end:
                return not self._ops.empty()
            try:
                fn, fut = self._ops.get_nowait()
            except queue.Empty:
                return False
            if fut is not None and not fut.set_running_or_notify_cancel():
                continue
            try:
                result = fn()
            except BaseException as exc:
                if fut is not None:
                    fut.set_exception(exc)
                else:
                    log.error("operation-failed error=%r", exc)
                continue
            if fut is not None:
                fut.set_result(result)

    def close(self) -> None:
        for h in (self.route_hints, self.datapath_hints):
            if h is not None:
                h.close()
        self._stop.set()
        with self._pipe_lock:
            self._closed = True
            for fd in (self._wake_r, self._wake_w):
                with contextlib.suppress(OSError):
                    os.close(fd)
        close = getattr(self.pinner, "close", None)
        if close is not None:
            close()
        self.dp.close()


def _process_age_ms() -> str:
    """Milliseconds since this process started (exec), from /proc; '-' where unknown."""
    try:
        with open("/proc/self/stat") as f:
            fields = f.read().rpartition(")")[2].split()
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: start time, ticks
        return f"{(time.clock_gettime(time.CLOCK_BOOTTIME) - started) * 1000:.0f}"
    except (OSError, ValueError, IndexError):
        return "-"
