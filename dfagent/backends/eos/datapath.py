"""The EOS backend behind the agent's :class:`dfagent.core.ports.Datapath` port, so the one
agent loop drives it as it drives the Linux datapath: ``start`` sets the switch up and adopts
what is there, every pass ``reconcile``s the switch's entries with the pin table, and the
pin sink (:meth:`pin`) takes the mirror path's micro-batches.

``records`` are the next hops pins point at (and the named ones), one per address; a next
hop the drain actuator has drained is reported out of the ECMP set. Pin counts come from the
pin table (no slow read: ``count_pins`` returns the last pass's figures).
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from dfagent.backends.eos.backend import EosBackend
from dfagent.backends.eos.session import EosError
from dfagent.core.nexthops import NextHop
from dfagent.core.pinning import Event, NhRecord
from dfagent.core.ports import PinStats


class EosDatapath:
    def __init__(
        self,
        backend: EosBackend,
        named: Mapping[str, Sequence[str]] | None = None,
        drained: Callable[[], set[str]] | None = None,
    ) -> None:
        self.backend = backend
        self.named = {n: tuple(a) for n, a in (named or {}).items()}
        self._drained = drained
        self.drained_now: set[str] = set()
        self._records: dict[NextHop, NhRecord] = {}
        self._counts: dict[int, int] = {}
        self.repairs = 0
        self.passes = 0

    # ── Datapath ────────────────────────────────────────────────────────────────
    @property
    def records(self) -> Mapping[NextHop, NhRecord]:
        return self._records

    def start(self) -> None:
        self.backend.start()
        self._refresh()

    def reconcile(
        self,
        force_count: bool = False,
        pinned: Mapping[int, int] | None = None,
        count: bool = True,
    ) -> list[Event]:
        if pinned is not None:  # a pass after a background count: nothing new to read
            return self._refresh(read=False)
        self.backend.reconcile()
        self.passes += 1
        return self._refresh()

    def wants_count(self) -> bool:
        return False

    def count_pins(self) -> dict[int, int]:
        return dict(self._counts)

    def check_and_repair(self) -> bool:
        return False  # the switch's entries are checked by every reconcile

    def close(self) -> None:
        pass

    # ── the pin sink ────────────────────────────────────────────────────────────
    @property
    def stats(self) -> PinStats:
        """The figures the mirror feed logs, in map mode's shape (read from its thread)."""
        t, b = self.backend.table.stats, self.backend.stats
        return PinStats(pinned=t.installed, unknown_nexthop=b.unknown_nexthop,
                        replaced=t.replaced, failed=t.failed + t.overflow,
                        batches=b.requests)  # fmt: skip

    def pin(self, batch: Iterable[Sequence[Any]]) -> PinStats:
        """This batch's figures for the agent's metrics: ``pinned`` counts the pins the table
        took for the switch (written by the next flush; a failed write logs
        ``eos-write-failed``)."""
        b = self.backend.stats
        unknown = b.unknown_nexthop
        ch = self.backend.pin(batch)
        return PinStats(pinned=len(ch.install), unknown_nexthop=b.unknown_nexthop - unknown,
                        batches=1)  # fmt: skip

    # ── next hops ───────────────────────────────────────────────────────────────
    def _refresh(self, read: bool = True) -> list[Event]:
        if read and self._drained is not None:
            with contextlib.suppress(EosError):  # no answer: keep the last known
                self.drained_now = self._drained()
        counts = self.backend.table.counts()
        addrs = set(counts) | {a.partition("%")[0] for v in self.named.values() for a in v}
        events: list[Event] = []
        records: dict[NextHop, NhRecord] = {}
        ifname = self.backend.name[:15] or "eos"
        for mark, addr in enumerate(sorted(a for a in addrs if a and not a.startswith("%")), 1):
            try:
                fam = ipaddress.ip_address(addr).version
            except ValueError:
                continue
            nh = NextHop(fam, ifname, addr)
            old = self._records.get(nh)
            rec = NhRecord(nh, mark, in_ecmp=addr not in self.drained_now)
            rec.pinned = counts.get(addr, 0)
            records[nh] = rec
            if old is None:
                events.append(Event("added", nh, mark))
            elif old.in_ecmp and not rec.in_ecmp:
                events.append(Event("drained", nh, mark, rec.pinned))
            elif rec.in_ecmp and not old.in_ecmp:
                events.append(Event("returned", nh, mark, rec.pinned))
        self._records = records
        self._counts = {r.mark: r.pinned or 0 for r in records.values()}
        return events
