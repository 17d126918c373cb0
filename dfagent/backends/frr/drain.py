"""Graceful drain on an FRR router, as operators do it: no restart, no session reset.

The router's inbound route-map gives local-preference 1 to paths whose next hop is in the
prefix-lists DRAIN4 / DRAIN6, so a drained server's paths leave the ECMP set while its BGP
session stays up. Draining adds the server's next hops to those lists; undraining removes
them. The lists end in `seq 4294967295 deny any` so they are never empty (FRR treats an
empty prefix-list as matching everything). See labs/resilient-ecmp/lb/frr.conf.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
from collections.abc import Iterable, Sequence
from typing import Any

from dfagent.config import DEFAULT_DRAIN_PREFIX_LIST_V4, DEFAULT_DRAIN_PREFIX_LIST_V6

LAST_SEQ = 4294967295
SEQ_STEP = 5


class VtyshError(RuntimeError):
    pass


class FrrDrain:
    def __init__(
        self,
        vtysh: Sequence[str],
        plist4: str = DEFAULT_DRAIN_PREFIX_LIST_V4,
        plist6: str = DEFAULT_DRAIN_PREFIX_LIST_V6,
    ):
        """`vtysh` is the argv that reaches the router's vtysh (with netns exec, --vty_socket)."""
        self.vtysh = list(vtysh)
        self.plists = {4: plist4, 6: plist6}

    def _run(self, *commands: str) -> str:
        argv = [*self.vtysh]
        for c in commands:
            argv += ["-c", c]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        out = proc.stdout + proc.stderr
        if proc.returncode != 0 or "% " in out:
            raise VtyshError(f"vtysh {' '.join(commands)!r} failed: {out.strip()}")
        return proc.stdout

    def entries(self, family: int) -> list[dict[str, Any]]:
        """The prefix-list's entries (vtysh prints one JSON document per daemon; take one)."""
        kw = "ip" if family == 4 else "ipv6"
        text = self._run(f"show {kw} prefix-list {self.plists[family]} json")
        docs = _json_documents(text)
        for doc in docs:
            for plists in doc.values():
                if self.plists[family] in plists:
                    return list(plists[self.plists[family]]["entries"])
        return []

    def drained(self) -> set[str]:
        out = set()
        for fam in (4, 6):
            for e in self.entries(fam):
                if e["type"] == "permit" and e["sequenceNumber"] != LAST_SEQ:
                    out.add(str(ipaddress.ip_network(e["prefix"]).network_address))
        return out

    def drain(self, nexthops: Iterable[str]) -> None:
        """Put next hops in the drain lists (idempotent); BGP re-runs the inbound policy."""
        for nh in nexthops:
            addr = ipaddress.ip_address(nh)
            entries = self.entries(addr.version)
            prefix = f"{addr}/{addr.max_prefixlen}"
            if any(e["prefix"] == prefix and e["type"] == "permit" for e in entries):
                continue
            seqs = [e["sequenceNumber"] for e in entries if e["sequenceNumber"] != LAST_SEQ]
            seq = max(seqs, default=0) + SEQ_STEP
            kw = "ip" if addr.version == 4 else "ipv6"
            self._run(
                "configure terminal",
                f"{kw} prefix-list {self.plists[addr.version]} seq {seq} permit {prefix}",
            )

    def undrain(self, nexthops: Iterable[str]) -> None:
        for nh in nexthops:
            addr = ipaddress.ip_address(nh)
            prefix = f"{addr}/{addr.max_prefixlen}"
            kw = "ip" if addr.version == 4 else "ipv6"
            for e in self.entries(addr.version):
                if e["prefix"] == prefix and e["type"] == "permit":
                    self._run(
                        "configure terminal",
                        f"no {kw} prefix-list {self.plists[addr.version]} "
                        f"seq {e['sequenceNumber']} permit {prefix}",
                    )


def _json_documents(text: str) -> list[Any]:
    decoder = json.JSONDecoder()
    docs, i = [], 0
    while i < len(text):
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            break
        doc, i = decoder.raw_decode(text, i)
        docs.append(doc)
    return docs
