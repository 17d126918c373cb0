"""Kernel mode's copy of the pins in nft maps, so they outlive the conntrack table.

A census (conntrack.census) lists every entry carrying dfagent's bits; :meth:`CtCopy.sync`
rewrites one of two generation maps per family (``copy4a``/``copy4b``, ``copy6a``/
``copy6b``) with those flows, the generation not written last, so the other one still holds
the previous census while this one is refilled batch by batch. The ruleset looks both up for
a VIP packet whose conntrack entry has no dfagent bits (ruleset.render_ct_copy).

Elements carry a timeout longer than two census periods: rewriting the map replaces them
long before, and if the agent stops they age out on their own.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

from dfagent.backends.linux.nft import Nft, NftError
from dfagent.backends.linux.ruleset import COPY_GENERATIONS, COPY_TIMEOUT, T, chain_name

log = logging.getLogger("dfagent.linux")
BATCH = 5000  # elements per nft transaction (pin-rate bench: ~100 k elements/s)

Flow = tuple[str, str, int, int, int]  # src, dst, sport, dport, slot


@dataclass
class SyncResult:
    written: int = 0
    skipped: int = 0  # flows of slots without live chains (dead, quarantined)
    failed: int = 0
    seconds: float = 0.0
    generation: str = ""


class CtCopy:
    def __init__(self, nft: Nft) -> None:
        self.nft = nft
        self._next = 0  # index into COPY_GENERATIONS

    def sync(self, flows: Iterable[Flow], live_slots: set[int], period: float) -> SyncResult:
        """Rewrite the older generation with ``flows`` (those of ``live_slots`` only: a
        dead next hop's pins must not come back)."""
        t0 = time.monotonic()
        gen = COPY_GENERATIONS[self._next]
        self._next = (self._next + 1) % len(COPY_GENERATIONS)
        res = SyncResult(generation=gen)
        # two periods: this generation is rewritten every second census
        timeout = max(COPY_TIMEOUT, int(3 * period) + 1)
        by_fam: dict[str, list[str]] = {"4": [], "6": []}
        for src, dst, sport, dport, slot in flows:
            if slot not in live_slots:
                res.skipped += 1
                continue
            by_fam["6" if ":" in dst else "4"].append(
                f"{src} . {dst} . {sport} . {dport} timeout {timeout}s"
                f" : jump {chain_name('pin', slot)}"
            )
        for fam, elems in by_fam.items():
            name = f"copy{fam}{gen}"
            first = f"flush map {T} {name}\n"
            for i in range(0, max(len(elems), 1), BATCH):
                if not self._add(name, elems[i : i + BATCH], res, first):
                    res.failed += max(0, len(elems) - i - BATCH)  # the rest is not tried
                    break
                first = ""
        res.seconds = time.monotonic() - t0
        return res

    def _add(self, name: str, elems: list[str], res: SyncResult, prefix: str = "") -> bool:
        """Add a batch (halved to find elements nft refuses, e.g. a slot whose chain went
        away meanwhile); False when the map itself is gone (a firewall reload: the repair
        re-creates it empty and the next census fills it)."""
        body = f"add element {T} {name} {{ {', '.join(elems)} }}\n" if elems else ""
        try:
            self.nft.run(prefix + body)
            res.written += len(elems)
            return True
        except NftError as exc:
            try:  # is the map there? (terse: never list a big map's elements)
                if prefix:
                    self.nft.run(prefix)
                else:
                    self.nft.run_json(f"list map {T} {name}", terse=True)
            except NftError:
                log.warning("ct-copy-failed map=%s error=%s", name, str(exc)[:200])
                res.failed += len(elems)
                return False
            if len(elems) <= 1:
                res.failed += len(elems)
                return True
        mid = len(elems) // 2
        return self._add(name, elems[:mid], res) and self._add(name, elems[mid:], res)
