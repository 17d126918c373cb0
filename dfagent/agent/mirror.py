"""The mirror path into the agent: receiver → egress of each SYN → micro-batches → the
agent's loop, which writes the pins (nothing else writes to the datapath).

Runs in its own thread; reading the counters of the pin sink from here for the periodic log
line is a read of plain integers, not a change of state.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

from dfagent.agent.agent import Agent
from dfagent.backends.linux.mapmode import MicroBatcher, PinItem
from dfagent.core.egress import EgressResolver

log = logging.getLogger("dfagent.mirror")
REPORT_EVERY = 10.0


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
        self.batcher = MicroBatcher(agent, max_items=max_items, max_delay=max_delay)

    def run(self, stop: threading.Event) -> None:
        next_report = time.monotonic() + REPORT_EVERY
        while not stop.is_set():
            events = self.receiver.poll_batch(self.max_items, timeout=self.max_delay)
            now = time.monotonic()
            for item in self.egress.pin_items(events):
                self.batcher.add(PinItem(*item), now)
            self.batcher.poll(time.monotonic())
            if now >= next_report:
                next_report = now + REPORT_EVERY
                self.report()
        self.batcher.flush()

    def report(self) -> None:
        st = getattr(self.agent.pinner, "stats", None)
        log.info(
            "map-pins pinned=%s unknown_session=%d not_vip=%d unknown_nexthop=%s replaced=%s "
            "failed=%s batches=%s mirror=%s",
            getattr(st, "pinned", "-"),
            self.egress.unknown,
            self.egress.not_vip,
            getattr(st, "unknown_nexthop", "-"),
            getattr(st, "replaced", "-"),
            getattr(st, "failed", "-"),
            getattr(st, "batches", "-"),
            json.dumps(self.receiver.counters, sort_keys=True),
        )
