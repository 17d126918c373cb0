"""What the gRPC server needs from the agent: one small Protocol, implemented by the agent.

The agent owns all state in one loop (architecture convention 8); the server only calls these
methods and converts their values, so every mutation still goes through that one owner.
Methods are called from the server's worker threads: the implementation hands the request
to its loop and waits for the answer.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from dfagent.core.model import (
    AgentStatus,
    DrainInfo,
    Event,
    FlowFilter,
    FlowPage,
    NexthopInfo,
)


class ControlError(Exception):
    """Base of the errors the agent raises on purpose; their message goes to the client."""


class NotFound(ControlError):
    """Unknown next hop (by name or address) or other named object."""


class InvalidArgument(ControlError):
    """An argument the agent cannot use (bad address, negative deadline, bad page token)."""


class AgentControl(Protocol):
    def status(self) -> AgentStatus: ...

    def list_nexthops(self) -> list[NexthopInfo]: ...

    def list_flows(self, filter: FlowFilter, limit: int, page_token: str) -> FlowPage:
        """At most ``limit`` flows from ``page_token`` on ("" = first page)."""
        ...

    def purge_flows(self, filter: FlowFilter) -> int:
        """Delete the matching pins; return how many went."""
        ...

    def drain(self, nexthop: str, deadline_s: float | None) -> DrainInfo:
        """Take ``nexthop`` out of new-connection ECMP, keeping its pins.

        With ``deadline_s`` the agent releases the pins left after that many seconds.
        """
        ...

    def undrain(self, nexthop: str) -> DrainInfo: ...

    def drain_status(self, nexthop: str) -> DrainInfo: ...

    def watch_events(self) -> Iterator[Event]:
        """Blocking iterator of events; ends when the agent stops.

        When the client goes away the server calls ``close()`` on the iterator from another
        thread if it has one, so an implementation blocked in ``__next__`` should provide a
        thread-safe ``close()`` that makes it stop (a plain generator cannot be closed while
        it runs: its worker thread stays blocked until the next event).
        """
        ...

    def resync(self) -> None:
        """Re-read routes, neighbours and conntrack and repair the datapath."""
        ...
