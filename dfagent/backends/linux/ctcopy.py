"""Kernel mode's copy of the pins in nft maps, so they outlive the conntrack table.

A census (conntrack.census) lists every entry carrying dfagent's bits; :meth:`CtCopy.sync`
makes the maps ``copy4``/``copy6`` (5-tuple → ``pin_<slot>``) equal to it. Only the
difference from the previous census is written (deletes of gone flows, adds of new ones, in
one transaction per batch): rewriting every element costs ~20-35 µs of CPU per pin and
pass (libnftables parses each element; flushing a big map costs the kernel ~10 µs per
element), while most connections outlive many censuses. The price is one Python set of the
copied flows (~100-150 bytes per pin).

The maps are rewritten whole (flush + add) when their content is unknown: the first sync
after a start, and whenever the table's or a map's kernel handle changed (a firewall reload
or a repair re-created them empty). Elements have no timeout: a flow stays exactly as long
as a census finds it; `dfagent linux cleanup` deletes the table and the maps with it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

from dfagent.backends.linux.nft import NftError, NftHandle
from dfagent.backends.linux.ruleset import COPY_MAPS, FAMILY, TABLE, T, chain_name

log = logging.getLogger("dfagent.linux")
BATCH = 5000  # elements per nft transaction

Flow = tuple[str, str, int, int, int]  # src, dst, sport, dport, slot


@dataclass
class SyncResult:
    added: int = 0
    deleted: int = 0
    copied: int = 0  # flows in the copy after this sync
    skipped: int = 0  # flows of slots without live chains (dead, quarantined)
    failed: int = 0
    full: bool = False  # the maps were rewritten whole
    seconds: float = 0.0


def _key(f: Flow) -> str:
    return f"{f[0]} . {f[1]} . {f[2]} . {f[3]}"


class CtCopy:
    def __init__(self, nft: NftHandle) -> None:
        self.nft = nft
        self._have: dict[str, set[Flow]] | None = None  # map → flows written there
        self._handles: dict[str, int] = {}

    def _map_handles(self, table_handle: int | None) -> dict[str, int]:
        """Kernel handles of the maps (``list maps``: nft 1.0.6 fetches every element for
        any listing of rules, a table or an element, but not for this) and of the table,
        as the datapath's last check saw it: a re-created table gets a new handle, its maps
        their old ones again (handles count per table)."""
        out = {"table": -1 if table_handle is None else table_handle}
        out.update({name: -1 for name in COPY_MAPS})
        try:
            for obj in self.nft.run_json(f"list maps {FAMILY}", terse=True):
                m = obj.get("map", {})
                if m.get("table") == TABLE and m.get("name") in COPY_MAPS:
                    out[str(m["name"])] = int(m.get("handle", -1))
        except NftError:
            pass
        return out

    def sync(
        self, flows: Iterable[Flow], live_slots: set[int], table_handle: int | None = None
    ) -> SyncResult:
        """Make the copy hold ``flows`` of ``live_slots`` (a dead next hop's pins must not
        come back). ``table_handle``: the table's kernel handle, if known."""
        t0 = time.monotonic()
        res = SyncResult()
        want: dict[str, set[Flow]] = {name: set() for name in COPY_MAPS}
        for f in flows:
            if f[4] not in live_slots:
                res.skipped += 1
                continue
            want["copy6" if ":" in f[1] else "copy4"].add(f)
        handles = self._map_handles(table_handle)
        if self._have is None or handles != self._handles:
            self._have = None
            res.full = True
        for name in COPY_MAPS:
            have = self._have[name] if self._have is not None else set()
            gone = sorted(have - want[name])
            new = sorted(want[name] - have)
            kept = self._write(name, gone, new, res, flush=res.full)
            want[name] = (have & want[name]) | kept if not res.full else kept
        self._have = want
        # a missing map: unknown content (the next sync writes it whole once it is back)
        self._handles = handles if all(handles[m] >= 0 for m in COPY_MAPS) else {}
        res.copied = sum(len(v) for v in want.values())
        res.seconds = time.monotonic() - t0
        return res

    def _write(
        self, name: str, gone: list[Flow], new: list[Flow], res: SyncResult, flush: bool
    ) -> set[Flow]:
        """Delete ``gone``, add ``new`` (after a flush when ``flush``); returns the new flows
        that are in the map now."""
        ok: set[Flow] = set()
        ops = [("delete", f) for f in gone] + [("add", f) for f in new]
        prefix = f"flush map {T} {name}\n" if flush else ""
        if not ops and not prefix:
            return ok
        for i in range(0, max(len(ops), 1), BATCH):
            if not self._run(name, ops[i : i + BATCH], res, ok, prefix):
                res.failed += max(0, len(ops) - i - BATCH)
                break
            prefix = ""
        return ok

    def _run(
        self, name: str, ops: list[tuple[str, Flow]], res: SyncResult, ok: set[Flow], prefix: str
    ) -> bool:
        """One transaction, halved to isolate an element nft refuses (a delete of an element
        that is gone, an add to a slot whose chain went away). False: the map is gone."""
        dels = [_key(f) for verb, f in ops if verb == "delete"]
        adds = [f"{_key(f)} : jump {chain_name('pin', f[4])}" for verb, f in ops if verb == "add"]
        script = prefix
        if dels:
            script += f"delete element {T} {name} {{ {', '.join(dels)} }}\n"
        if adds:
            script += f"add element {T} {name} {{ {', '.join(adds)} }}\n"
        try:
            self.nft.run(script)
        except NftError as exc:
            try:  # is the map there? (never list a big map: see _map_handles)
                if prefix:
                    self.nft.run(prefix)
                elif self._map_handles(None).get(name, -1) < 0:
                    raise exc
            except NftError:
                log.warning("ct-copy-failed map=%s error=%s", name, str(exc)[:200])
                res.failed += len(ops)
                return False
            if len(ops) <= 1:
                res.failed += len(ops)
                return True
            mid = len(ops) // 2
            if not self._run(name, ops[:mid], res, ok, ""):
                res.failed += len(ops) - mid  # not tried: the map is gone
                return False
            return self._run(name, ops[mid:], res, ok, "")
        for verb, f in ops:
            if verb == "add":
                res.added += 1
                ok.add(f)
            else:
                res.deleted += 1
        return True
