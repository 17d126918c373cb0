"""Is a next hop alive? The policy, apart from how link and neighbour state is read.

Alive: its interface exists and is up with carrier, and its neighbour entry is not FAILED.
Once dead, a next hop stays dead until its neighbour entry is confirmed good again: an
expired FAILED entry (the kernel forgets it) is no proof of life.
"""

from __future__ import annotations

from dfagent.core.nexthops import NextHop

NUD_FAILED = 0x20
NUD_GOOD = 0x02 | 0x04 | 0x08 | 0x10 | 0x40 | 0x80  # REACHABLE STALE DELAY PROBE NOARP PERM


class Liveness:
    def __init__(self) -> None:
        self.dead: set[NextHop] = set()

    def judge(self, nh: NextHop, link_ok: bool, neigh_state: int | None) -> bool:
        """``link_ok``: the interface exists, is up and has carrier; ``neigh_state``: the NUD
        state of the gateway's neighbour entry, None when there is none."""
        if not link_ok or (neigh_state is not None and neigh_state & NUD_FAILED):
            self.dead.add(nh)
            return False
        if nh in self.dead:
            if neigh_state is not None and neigh_state & NUD_GOOD:
                self.dead.discard(nh)
                return True
            return False
        return True
