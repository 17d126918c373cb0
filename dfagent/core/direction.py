"""Does the router see both directions of the VIP connections? (pure; no I/O, clock passed in)

Conntrack-based pinning (kernel mode, map mode) needs the replies: on a router that sees only
client → server packets (direct server return, a return path that bypasses it) the SYN makes
a SYN_SENT entry and every later packet of the connection is ``ct state invalid``, so the
pins never apply (docs/kernel-mode.md, "One direction"). The ruleset counts TCP packets to
the VIPs and the INVALID ones among them in two named nft counters; the agent feeds the
cumulative values here every reconcile. Over each window of at least ``window`` seconds with
at least ``min_packets`` packets, a share of INVALID packets at or above ``threshold`` means
one direction (on a router that sees both, INVALID is a stray retransmit now and then).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class DirectionVerdict:
    suspected: bool  # the last full window looked one-directional
    packets: int  # TCP packets to the VIPs in that window
    invalid: int  # of which conntrack called INVALID
    windows: int  # full windows judged so far
    warnings: int  # how many times the verdict turned to "suspected"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class DirectionProbe:
    def __init__(self, window: float = 10.0, min_packets: int = 100, threshold: float = 0.5):
        self.window = window
        self.min_packets = min_packets
        self.threshold = threshold
        self._base: tuple[float, int, int] | None = None
        self.verdict = DirectionVerdict(False, 0, 0, 0, 0)

    def observe(self, now: float, packets: int, invalid: int) -> DirectionVerdict | None:
        """Feed cumulative counter values; returns the new verdict when a window closes with
        enough packets (None otherwise). Counters that went down (table re-created) restart
        the window."""
        if self._base is None or packets < self._base[1] or invalid < self._base[2]:
            self._base = (now, packets, invalid)
            return None
        t0, p0, i0 = self._base
        if now - t0 < self.window:
            return None
        dp, di = packets - p0, invalid - i0
        self._base = (now, packets, invalid)
        if dp < self.min_packets:
            return None
        suspected = di >= self.threshold * dp
        v = self.verdict
        warnings = v.warnings + (1 if suspected and not v.suspected else 0)
        self.verdict = DirectionVerdict(suspected, dp, di, v.windows + 1, warnings)
        return self.verdict
