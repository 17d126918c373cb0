"""The agent's metrics: one object of plain counts that the agent and its threads feed, turned
into Prometheus metrics only when scraped.

    m = Metrics(backend="linux", mode="map")
    rx = MirrorReceiver(sources, counters=m.mirror)     # the receiver counts into m.mirror
    agent = Agent(dp, …, metrics=m)                     # passes, repairs, pin batches, latency
    server = serve_metrics(m, "127.0.0.1:9642")         # GET /metrics; server.close()

Why plain counts and a collector, not prometheus-client's Counter objects: the mirror path
counts in its hot loop (a dict add per batch, no lock), the loop thread feeds the rest, and
all of it is read only at scrape time. Each :class:`Metrics` renders into its own
``CollectorRegistry`` (never the process-global one), so tests build as many as they like.

Backend errors are counted from the logs: every ``*-failed`` event the agent or a backend
logs (``route-failed``, ``nft-failed``, ``count-failed``, …) is one error of that kind, so a
new failure path is counted the day it is logged, without a second place to remember it.
"""

from __future__ import annotations

import bisect
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import start_http_server

from dfagent import __version__
from dfagent.core.model import NEXTHOP_STATES, NexthopInfo

# SYN → pin: a micro-batch waits up to 2 ms, an nft transaction takes about 1 ms; the top
# buckets catch a loop held up by a long reconcile pass
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
PIN_RESULTS = ("pinned", "replaced", "unknown_nexthop", "failed")


class Histogram:
    """Counts per bucket (``le`` bounds, +Inf last) and the sum; one writer thread."""

    def __init__(self, bounds: Sequence[float] = LATENCY_BUCKETS) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[str, float]]:
        out, total = [], 0
        for bound, n in zip((*map(str, self.bounds), "+Inf"), self.counts, strict=True):
            total += n
            out.append((bound, float(total)))
        return out


@dataclass
class Reload:
    ok: bool = True  # the last attempt
    ok_at: float = 0.0  # Unix time of the last good config (the start counts)
    successes: int = 0
    failures: int = 0
    restart_needed: tuple[str, ...] = ()  # keys changed since start that a reload cannot apply


class Metrics:
    def __init__(
        self, backend: str = "linux", mode: str = "kernel", clock: Callable[[], float] = time.time
    ) -> None:
        self.backend = backend
        self.mode = mode
        self.clock = clock
        # the mirror path: the receiver's counters (packets, bytes, syn, skip:R, error:R,
        # drop:not-allowed, drop:queue-full, …) and the egress resolver's (drop:not-vip,
        # drop:unknown-session) in one dict; see mirror_outcome() for the labels
        self.mirror: dict[str, int] = {}
        self.pins = dict.fromkeys(PIN_RESULTS, 0)
        self.pin_batches = 0
        self.evicted = 0  # map mode: pins removed from a full map to make room
        self.ct_marks = {"marked": 0, "failed": 0}  # map mode: conntrack entries marked at pin
        self.latency = Histogram()
        self.nexthops: tuple[NexthopInfo, ...] = ()
        self.passes = 0
        self.repairs = 0
        self.errors: dict[str, int] = {}  # *-failed event → count
        self.reload = Reload(ok_at=clock())
        # read at scrape time: queue → depth, queue → drops the queue's owner counts
        self.queue_depth: dict[str, Callable[[], int]] = {}
        self.queue_drops: dict[str, Callable[[], int]] = {}
        self._lock = threading.Lock()  # errors come from any thread

    # ── feeding (each on the thread that owns the figure) ──────────────────────────────
    def pin_batch(self, result: Any, received: Sequence[float] = (), now: float = 0.0) -> None:
        """A pin sink's batch result (:class:`~dfagent.core.ports.PinStats`: pinned includes
        replaced) and the receive times of its SYNs (``time.monotonic()``)."""
        self.pin_batches += 1
        replaced = int(getattr(result, "replaced", 0))
        self.pins["pinned"] += int(getattr(result, "pinned", 0)) - replaced
        self.pins["replaced"] += replaced
        self.pins["unknown_nexthop"] += int(getattr(result, "unknown_nexthop", 0))
        self.pins["failed"] += int(getattr(result, "failed", 0))
        self.evicted += int(getattr(result, "evicted", 0))
        self.ct_marks["marked"] += int(getattr(result, "ct_marked", 0))
        self.ct_marks["failed"] += int(getattr(result, "ct_failed", 0))
        if received:
            now = now or time.monotonic()
            for t in received:
                self.latency.observe(max(0.0, now - t))

    def set_nexthops(self, rows: Iterable[NexthopInfo]) -> None:
        self.nexthops = tuple(rows)  # one assignment: a scrape sees one pass or the next

    def error(self, kind: str) -> None:
        with self._lock:
            self.errors[kind] = self.errors.get(kind, 0) + 1

    def reloaded(self, ok: bool, restart_needed: Sequence[str] = ()) -> None:
        r = self.reload
        r.ok = ok
        if ok:
            r.successes += 1
            r.ok_at = self.clock()
            r.restart_needed = tuple(restart_needed)
        else:
            r.failures += 1

    # ── rendering ──────────────────────────────────────────────────────────────────────
    def registry(self) -> CollectorRegistry:
        reg = CollectorRegistry(auto_describe=False)
        reg.register(_Collector(self))
        return reg

    def collect(self) -> Iterator[Metric]:
        yield _gauge(
            "dfagent_info",
            "The running agent (always 1).",
            [(["version", "backend", "mode"], [__version__, self.backend, self.mode], 1)],
        )
        yield from self._collect_mirror()
        pins = CounterMetricFamily(
            "dfagent_pins",
            "Pins written by the pin sink, by result (each pin once; replaced: the flow was "
            "pinned to another next hop before).",
            labels=["backend", "result"],
        )
        for result, n in self.pins.items():
            pins.add_metric([self.backend, result], n)
        yield pins
        yield _counter("dfagent_pin_batches", "Pin batches applied.", self.pin_batches)
        yield _counter(
            "dfagent_pins_evicted",
            "Map mode: oldest pins removed from a full pin map to make room (their connections "
            "keep their conntrack mark).",
            self.evicted,
        )
        marks = CounterMetricFamily(
            "dfagent_ct_marks",
            "Map mode: conntrack entries of pinned flows given the pin's mark when pinned "
            "(failed: the update was refused; the packet path still marks the next packet).",
            labels=["result"],
        )
        for result, n in self.ct_marks.items():
            marks.add_metric([result], n)
        yield marks
        h = self.latency
        hist = HistogramMetricFamily(
            "dfagent_syn_to_pin_seconds",
            "From the mirror receiver's read of a SYN to the end of the transaction that "
            "pinned it (queue, micro-batch and the agent's loop included).",
        )
        hist.add_metric([], h.cumulative(), h.sum)
        yield hist
        yield from self._collect_nexthops()
        yield _counter("dfagent_reconcile_passes", "Reconcile passes run.", self.passes)
        yield _counter(
            "dfagent_repairs",
            "Datapath repairs: something dfagent installed was changed or deleted under it.",
            self.repairs,
        )
        with self._lock:
            errors = dict(self.errors)
        err = CounterMetricFamily(
            "dfagent_backend_errors",
            "Failed backend operations, by the event logged (route-failed, nft-failed, …).",
            labels=["backend", "op"],
        )
        for op, n in sorted(errors.items()):
            err.add_metric([self.backend, op], n)
        yield err
        yield from self._collect_reload()
        depth = GaugeMetricFamily("dfagent_queue_depth", "Items waiting.", labels=["queue"])
        for name, read in self.queue_depth.items():
            depth.add_metric([name], read())
        yield depth
        drops = CounterMetricFamily(
            "dfagent_queue_drops", "Items dropped: the queue was full.", labels=["queue"]
        )
        for name, read in self.queue_drops.items():
            drops.add_metric([name], read())
        yield drops

    def _collect_mirror(self) -> Iterator[Metric]:
        m = self.mirror.copy()  # dict.copy holds the GIL: a consistent snapshot
        yield _counter("dfagent_mirror_received_packets", "Mirror packets read.", m.get("packets"))
        yield _counter("dfagent_mirror_received_bytes", "Mirror bytes read.", m.get("bytes"))
        fam = CounterMetricFamily(
            "dfagent_mirror_packets",
            "Mirror packets by outcome: syn (a SYN decoded), skipped (not a TCP SYN), error "
            "(malformed), dropped (not-allowed: source not listed; queue-full, not-vip, "
            "unknown-session: a decoded SYN not handed to the pin path), synack (the second "
            "chance: decoded SYN-ACKs; pinned: of flows whose SYN was not seen; seen: of "
            "flows their SYN pinned).",
            labels=["outcome", "reason"],
        )
        for key, n in sorted(m.items()):
            got = mirror_outcome(key)
            if got is not None:
                fam.add_metric(list(got), n)
        yield fam

    def _collect_nexthops(self) -> Iterator[Metric]:
        rows = self.nexthops
        pinned = GaugeMetricFamily(
            "dfagent_pinned_flows",
            "Connections pinned to each next hop (at the last count).",
            labels=["nexthop", "address"],
        )
        state = GaugeMetricFamily(
            "dfagent_nexthop_state",
            "Each next hop's state: 1 for the state it is in, 0 for the others.",
            labels=["nexthop", "address", "state"],
        )
        by_state = dict.fromkeys(NEXTHOP_STATES, 0)
        for r in rows:
            if r.pinned is not None:
                pinned.add_metric([r.name, r.address], r.pinned)
            for s in NEXTHOP_STATES:
                state.add_metric([r.name, r.address, s], float(r.state == s))
            by_state[r.state] = by_state.get(r.state, 0) + 1
        yield pinned
        yield state
        count = GaugeMetricFamily("dfagent_nexthops", "Next hops by state.", labels=["state"])
        for s, n in by_state.items():
            count.add_metric([s], n)
        yield count

    def _collect_reload(self) -> Iterator[Metric]:
        r = self.reload
        yield _gauge(
            "dfagent_config_last_reload_successful",
            "1 if the last config (re)load succeeded; 0: a bad file, the last good one runs.",
            [([], [], float(r.ok))],
        )
        yield _gauge(
            "dfagent_config_last_reload_success_timestamp_seconds",
            "When the running config was loaded (Unix time).",
            [([], [], r.ok_at)],
        )
        fam = CounterMetricFamily("dfagent_config_reloads", "SIGHUP reloads.", labels=["result"])
        fam.add_metric(["success"], r.successes)
        fam.add_metric(["failure"], r.failures)
        yield fam
        yield _gauge(
            "dfagent_config_restart_needed",
            "1 while the file changes keys a reload cannot apply (reload-restart-needed).",
            [([], [], float(bool(r.restart_needed)))],
        )


def mirror_outcome(key: str) -> tuple[str, str] | None:
    """(outcome, reason) of a mirror counter key; None for the totals (packets, bytes)."""
    if key == "syn":
        return ("syn", "")
    if key == "synack":  # the second chance: decoded; then pinned or seen (its SYN pinned)
        return ("synack", "decoded")
    kind, sep, reason = key.partition(":")
    if kind == "synack":
        return ("synack", reason)
    if not sep:
        return ("error", "socket") if key == "socket-errors" else None
    if kind == "skip":
        return ("skipped", reason)
    if kind == "drop":
        return ("dropped", reason)
    if kind == "error":
        return ("error", reason.strip())
    return None  # socket-error:ECODE: details of socket-errors, already counted


def _counter(name: str, doc: str, value: int | None) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=float(value or 0))


def _gauge(
    name: str, doc: str, samples: list[tuple[list[str], list[str], float]]
) -> GaugeMetricFamily:
    labels = samples[0][0] if samples else []
    fam = GaugeMetricFamily(name, doc, labels=labels)
    for _, values, v in samples:
        fam.add_metric(values, v)
    return fam


class _Collector:
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        return self.metrics.collect()


class ErrorCounter(logging.Handler):
    """Counts every ``<kind>-failed`` event logged (the first word of a dfagent log line)."""

    def __init__(self, metrics: Metrics) -> None:
        super().__init__(level=logging.WARNING)
        self.metrics = metrics

    def emit(self, record: logging.LogRecord) -> None:
        try:
            event = record.getMessage().split(" ", 1)[0]
        except Exception:  # never let counting break logging
            return
        if event.endswith("-failed"):
            self.metrics.error(event)


class MetricsServer:
    """``GET /metrics`` (and ``/``) on ``HOST:PORT`` in a daemon thread."""

    def __init__(self, metrics: Metrics, address: str) -> None:
        host, _, port = address.rpartition(":")
        host = host.strip("[]")
        self.address = address
        self._server, self._thread = start_http_server(
            int(port), addr=host, registry=metrics.registry()
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def serve_metrics(metrics: Metrics, address: str) -> MetricsServer:
    """Raises OSError (address in use, not local) before anything else has started."""
    return MetricsServer(metrics, address)
