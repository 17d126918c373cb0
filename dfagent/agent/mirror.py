"""The mirror path into the agent: receiver → egress of each SYN → micro-batches → the
agent's loop, which writes the pins (nothing else writes to the datapath).

Runs in its own thread. Each pin travels with its SYN's read time (from the receiver's queue)
so the agent measures SYN → pin from the read, not from the batcher. The counts live in the
agent's metrics (the receiver and the egress resolver count into its mirror dict); the
periodic log line reads them there. One line per SYN only at debug level.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from dfagent.agent.agent import Agent
from dfagent.config import Config
from dfagent.core.egress import EgressResolver
from dfagent.core.pinbatch import MicroBatcher, PinItem

log = logging.getLogger("dfagent.mirror")
REPORT_EVERY = 10.0


class _StampedSink:
    """The batcher's sink: hands the agent each batch with its SYNs' read times (the feed
    appends a time for every item it adds, so a flush takes exactly its batch's times)."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.received: list[float] = []

    def pin(self, batch: Iterable[Any]) -> None:
        received, self.received = self.received, []
        self.agent.pin(batch, received)


class MirrorFeed:
    def __init__(
        self,
        agent: Agent,
        receiver: Any,
        egress: EgressResolver,
        max_items: int = 256,
        max_delay: float = 0.002,
    ) -> None:
        self.agent = agent
        self.receiver = receiver
        self.egress = egress
        self.max_items = max_items
        self.max_delay = max_delay
        self._sink = _StampedSink(agent)
        self.batcher = MicroBatcher(self._sink, max_items=max_items, max_delay=max_delay)
        agent.metrics.queue_depth["mirror"] = receiver.qsize
        agent.metrics.queue_drops["mirror"] = lambda: receiver.counters.get("drop:queue-full", 0)
        if hasattr(receiver, "kernel_drops"):  # the socket's receive buffer overflowed
            agent.metrics.queue_drops["socket"] = receiver.kernel_drops

    def set_batch(self, max_items: int, max_delay: float) -> None:
        """New micro-batch limits (a config reload); the next batch uses them."""
        self.max_items = self.batcher.max_items = max_items
        self.max_delay = self.batcher.max_delay = max_delay

    def run(self, stop: threading.Event) -> None:
        next_report = time.monotonic() + REPORT_EVERY
        debug = log.isEnabledFor(logging.DEBUG)
        sink = self._sink
        while not stop.is_set():
            chunks = self.receiver.poll_stamped(self.max_items, timeout=self.max_delay)
            now = time.monotonic()
            for received, events in chunks:
                for item in self.egress.pin_items(events):
                    if debug:
                        log.debug("mirror-syn src=%s dst=%s sport=%d dport=%d nexthop=%s", *item)
                    sink.received.append(received)  # before add: a flush takes it along
                    self.batcher.add(PinItem(*item), now)
            self.batcher.poll(time.monotonic())
            if now >= next_report:
                next_report = now + REPORT_EVERY
                self.report()
        self.batcher.flush()
        self.report()  # the final figures, at stop

    def report(self) -> None:
        m = self.agent.metrics
        mirror = m.mirror.copy()
        log.info(
            "map-pins pinned=%d replaced=%d unknown_nexthop=%d failed=%d evicted=%d batches=%d "
            "unknown_session=%d not_vip=%d synack_pinned=%d mirror=%s",
            m.pins["pinned"] + m.pins["replaced"],
            m.pins["replaced"],
            m.pins["unknown_nexthop"],
            m.pins["failed"],
            m.evicted,
            m.pin_batches,
            mirror.get("drop:unknown-session", 0),
            mirror.get("drop:not-vip", 0),
            mirror.get("synack:pinned", 0),
            json.dumps(mirror, sort_keys=True),
        )


def mirror_sessions(cfg: Config) -> dict[int, str]:
    return {sid: cfg.session_nexthop(sid) or "" for sid in cfg.mirror.sessions}


def session_families(cfg: Config) -> dict[int, dict[int, str]]:
    """Sessions naming a server with a v4 and a v6 address (one session per member)."""
    return {sid: f for sid in cfg.mirror.sessions if (f := cfg.session_families(sid))}


@dataclass
class MirrorPath:
    """The mirror path's parts for `dfagent run` (both backends): receiver and feed, with
    their threads (started by :meth:`start`, once the signal handlers are in place)."""

    receiver: Any
    feed: MirrorFeed
    stop: threading.Event
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        self.threads = [
            threading.Thread(target=self.receiver.run, args=(self.stop,), name="mirror"),
            threading.Thread(target=self.feed.run, args=(self.stop,), name="feed"),
        ]
        for t in self.threads:
            t.daemon = True
            t.start()

    def apply(self, cfg: Config) -> None:
        """A reloaded config: sources, sessions and batch limits take effect at once."""
        self.receiver.set_sources(None if cfg.mirror.any_source else list(cfg.mirror.sources))
        self.receiver.synack = self.feed.egress.second_chance = cfg.mirror.synack
        self.feed.egress.sessions = mirror_sessions(cfg)
        self.feed.egress.by_family = session_families(cfg)
        if (cfg.mirror.egress == "query") != (self.feed.egress.query is not None):
            self.feed.egress.query = kernel_query(cfg)
        self.feed.set_batch(cfg.mirror.batch.max_items, cfg.mirror.batch.max_delay_ms / 1000)

    def close(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(5)
        self.receiver.close()


def kernel_query(cfg: Config) -> Callable[[str, str, int, int], str | None] | None:
    """Linux `mirror.egress: query`: the kernel's answer for IPv4 flows (None: observed)."""
    if cfg.mirror.egress != "query":
        return None
    from dfagent.backends.linux.egress import KernelEgress

    return KernelEgress().nexthop


def open_mirror(
    cfg: Config,
    agent: Agent,
    stop: threading.Event,
    query: bool = False,
    kernel_query: Callable[[str, str, int, int], str | None] | None = None,
) -> MirrorPath:
    """The mirror path of a config (raises OSError when the receiver cannot bind).
    ``query``: a SYN of no known session is pinned with the next hop the switch says ("");
    ``kernel_query``: … with the next hop this returns (Linux `mirror.egress: query`)."""
    vips = tuple(v.prefix for v in cfg.vips)
    egress = EgressResolver(
        mirror_sessions(cfg),
        by_family=session_families(cfg),
        vips=vips,
        counters=agent.metrics.mirror,
        default="" if query else None,
        query=kernel_query,
        second_chance=cfg.mirror.synack,
    )
    sources = None if cfg.mirror.any_source else list(cfg.mirror.sources)
    batch = cfg.mirror.batch
    return open_path(agent, stop, egress, sources, batch.max_items, batch.max_delay_ms / 1000)


def open_path(
    agent: Agent,
    stop: threading.Event,
    egress: EgressResolver,
    sources: list[str] | None,
    max_items: int,
    max_delay: float,
) -> MirrorPath:
    """Bind the receiver (``sources`` None: any) and build the feed into ``agent``."""
    from dfagent.mirror.receiver import MirrorReceiver

    # the second chance is the egress resolver's setting: the receiver decodes SYN-ACKs for it
    receiver = MirrorReceiver(sources, counters=agent.metrics.mirror, synack=egress.second_chance)
    receiver.open()
    feed = MirrorFeed(agent, receiver, egress, max_items, max_delay)
    return MirrorPath(receiver, feed, stop)
