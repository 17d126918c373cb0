"""Counting conntrack entries per dfagent mark.

ctnetlink events are lossy (field notes), so pins are counted with full dumps. The dump is
filtered in the kernel by mark/mask and done by the ``conntrack`` tool (C, ~240 k entries/s);
we only parse ``mark=`` from its lines.
"""

from __future__ import annotations

import re
import subprocess
from collections import Counter

from dfagent.core.marks import MARK_BASE, MARK_MASK

_MARK = re.compile(rb"\bmark=(\d+)")


class ConntrackError(RuntimeError):
    pass


def count_by_mark(timeout: float = 60.0) -> dict[int, int]:
    """mark → number of conntrack entries (IPv4 and IPv6) carrying a dfagent mark."""
    counts: Counter[int] = Counter()
    for fam in ("ipv4", "ipv6"):
        proc = subprocess.run(
            ["conntrack", "-L", "-f", fam, "-m", f"0x{MARK_BASE:08x}/0x{MARK_MASK:08x}"],
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        if proc.returncode != 0:
            raise ConntrackError(proc.stderr.decode(errors="replace").strip())
        for m in _MARK.finditer(proc.stdout):
            counts[int(m.group(1))] += 1
    return dict(counts)
