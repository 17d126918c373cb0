"""Counting conntrack entries per dfagent slot.

ctnetlink events are lossy (field notes), so pins are counted with full dumps. The dump is
filtered in the kernel on dfagent's flag bit and done by the ``conntrack`` tool (C, ~240 k
entries/s); we only parse ``mark=`` from its lines and map each mark to its slot.
"""

from __future__ import annotations

import re
import subprocess
from collections import Counter
from collections.abc import Iterable

from dfagent.core.marks import MarkSpace

_MARK = re.compile(rb"\bmark=(\d+)")
_ENDED = re.compile(rb"^tcp\s+\d+\s+\d+\s+(?:TIME_WAIT|CLOSE)\s")
# a live TCP entry's original tuple (the kernel mode copy keys its maps by it)
_TCP_ORIG = re.compile(rb"^tcp\s+\d+\s+\d+\s+\S+\s+src=(\S+) dst=(\S+) sport=(\d+) dport=(\d+)")


class ConntrackError(RuntimeError):
    pass


def count_by_slot(space: MarkSpace, timeout: float = 60.0) -> dict[int, int]:
    """slot → live connections (IPv4 and IPv6) carrying its mark: TCP entries in TIME_WAIT
    or CLOSE are closed connections waiting to expire, not pins anyone waits for."""
    return _dump(space, timeout, None)


Flow = tuple[str, str, int, int, int]  # src, dst, sport, dport, slot


def census(space: MarkSpace, timeout: float = 60.0) -> tuple[dict[int, int], list[Flow]]:
    """:func:`count_by_slot` plus every live TCP pin as ``(src, dst, sport, dport, slot)``
    (the original direction), from the same dumps: what the conntrack copy is fed."""
    flows: list[Flow] = []
    return _dump(space, timeout, flows), flows


def _dump(space: MarkSpace, timeout: float, flows: list[Flow] | None) -> dict[int, int]:
    counts: Counter[int] = Counter()
    flag = f"0x{space.flag:08x}"
    for fam in ("ipv4", "ipv6"):
        proc = _conntrack(["-L", "-f", fam, "-m", f"{flag}/{flag}"], timeout)
        if proc.returncode != 0:
            raise ConntrackError(proc.stderr.decode(errors="replace").strip())
        for line in proc.stdout.splitlines():
            if _ENDED.search(line):  # a closed connection's entry is no pin to wait for
                continue
            m = _MARK.search(line)
            slot = space.slot(int(m.group(1))) if m else None
            if slot is None:
                continue
            counts[slot] += 1
            t = _TCP_ORIG.match(line) if flows is not None else None
            if t:
                flows.append((t[1].decode(), t[2].decode(), int(t[3]), int(t[4]), slot))  # type: ignore[union-attr]
    return dict(counts)


def count_slots(space: MarkSpace, slots: Iterable[int], timeout: float = 60.0) -> dict[int, int]:
    """Like :func:`count_by_slot` for a few slots: one dump per slot and family, filtered by
    the kernel on the slot's exact mark, so only that slot's entries reach user space (the
    kernel still walks the table: about 0.5 µs per entry)."""
    counts: dict[int, int] = {}
    for slot in sorted(slots):
        counts[slot] = 0
        mark = f"0x{space.mark(slot):08x}/0x{space.mask:08x}"
        for fam in ("ipv4", "ipv6"):
            proc = _conntrack(["-L", "-f", fam, "-m", mark], timeout)
            if proc.returncode != 0:
                raise ConntrackError(proc.stderr.decode(errors="replace").strip())
            counts[slot] += sum(1 for line in proc.stdout.splitlines() if not _ENDED.search(line))
    return counts


def clear_marks(space: MarkSpace, timeout: float = 60.0) -> int:
    """Clear dfagent's bits from every conntrack entry carrying them (cleanup: a later start
    must not find old marks on live connections). Returns how many entries were updated."""
    total = 0
    for fam in ("ipv4", "ipv6"):
        # -m V/M on update: mark = (mark & ~M) | V, so 0/FIELD clears dfagent's bits alone
        # (other users' bits stay); conntrack 1.4.7 needs -f for a masked update
        proc = _conntrack(["-U", "-f", fam, "-m", f"0/0x{space.mask:08x}"], timeout)
        m = re.search(rb"(\d+) flow entries have been updated", proc.stderr)
        if m:
            total += int(m.group(1))
        elif proc.returncode != 0:
            raise ConntrackError(proc.stderr.decode(errors="replace").strip())
    return total


def _conntrack(args: list[str], timeout: float) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(
            ["conntrack", *args], capture_output=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConntrackError(f"conntrack {args[0]}: {exc}") from exc
