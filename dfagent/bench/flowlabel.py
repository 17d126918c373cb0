"""`dfagent bench flowlabel`: a router hashing on the IPv6 flow label, and TCP changing it.

lb hashes IPv6 on the flow label (``net.ipv6.fib_multipath_hash_policy=0``, Linux's default:
source, destination, flow label, next header; RFC 6438). The client's kernel picks a new
label for a connection after a retransmission timeout (``net.ipv6.auto_flowlabels`` with
``net.core.txrehash``: a fresh ``sk_txhash`` per RTO, to route around a failed path), so a
router hashing on it moves the connection to another server.

Per mode, on a fresh lab: N IPv6 connections; then a few rounds of loss: mid drops every
client → VIP packet for a moment while each connection sends a request, so each request is
retransmitted after one or more RTOs, with a new label. Counted: connections that moved
(reset or answered by another server), connections whose label changed (labels mid saw per
client port, in an nft set) and the client's TcpTimeoutRehash counter.
"""

from __future__ import annotations

import json
import time
from typing import Any

from dfagent.bench.midlab import MidBench
from dfagent.bench.pcc import PORT, VIP6, Holder

T = "inet dfagent_bench_fl"
# mid: the labels of client → VIP packets per client port, and a chain to drop them in
WATCH = f"""table {T} {{
  set labels {{ typeof tcp sport . ip6 flowlabel; size 262144; flags dynamic; }}
  chain watch {{
    type filter hook forward priority -10;
    ip6 daddr {VIP6} tcp dport {PORT} add @labels {{ tcp sport . ip6 flowlabel }}
  }}
  chain loss {{ type filter hook forward priority 0; }}
}}
"""
DROP = f"add rule {T} loss ip6 daddr {VIP6} tcp dport {PORT} drop"


class FlowLabelBench(MidBench):
    def __init__(self, connections: int, log: Any = print, rounds: int = 3, loss: float = 1.0):
        super().__init__(connections, log=log)
        self.rounds, self.loss = rounds, loss

    def prepare(self, mode: str) -> None:
        self.on("lb", "sysctl", "-qw", "net.ipv6.fib_multipath_hash_policy=0")
        self.on("mid", "nft", "-f", "-", stdin=WATCH)

    def _rehashes(self) -> int:
        """The client's TcpTimeoutRehash (one per RTO that picked a new hash and label)."""
        lines = self.on("client", "cat", "/proc/net/netstat").splitlines()
        for head, vals in zip(lines[::2], lines[1::2], strict=False):
            if head.startswith("TcpExt:"):
                return int(dict(zip(head.split(), vals.split(), strict=True))["TcpTimeoutRehash"])
        return 0

    def _labels(self) -> dict[int, int]:
        """client port → distinct labels mid saw."""
        out = self.on("mid", "nft", "-j", "list", "set", *T.split(), "labels")
        seen: dict[int, set[int]] = {}
        for obj in json.loads(out)["nftables"]:
            for e in obj.get("set", {}).get("elem", []):
                port, label = (e.get("elem", e))["concat"]
                seen.setdefault(int(port), set()).add(int(label))
        return {p: len(v) for p, v in seen.items()}

    def measure(self, mode: str) -> dict[str, Any]:
        res: dict[str, Any] = {"rounds": []}
        with self.fresh_lab(mode):
            assert self.state is not None
            holder = Holder(self.state)
            try:
                opened = holder.ask("open", addrs=[VIP6], port=PORT, count=self.n)
                res["opened"], res["by_server"] = opened["opened"], opened["by_server"]
                ports = {p for _vip, p, _s in holder.ask("ports")["flows"]}
                rehash0, broken0 = self._rehashes(), 0
                for i in range(self.rounds):
                    self.on("mid", "nft", DROP)
                    holder.send("check", timeout=15.0)
                    time.sleep(self.loss)
                    self.on("mid", "nft", "flush", "chain", *T.split(), "loss")
                    chk = holder.reply()
                    rnd = {"round": i + 1, "moved": chk["broken"] - broken0,
                           "alive": chk["alive"], "moved_from": chk["broken_from"]}  # fmt: skip
                    broken0 = chk["broken"]
                    res["rounds"].append(rnd)
                    self.log(f"{mode}: loss {self.loss}s round {i + 1}: moved {rnd['moved']:4} "
                             f"alive {rnd['alive']:4} {rnd['moved_from']}")  # fmt: skip
                labels = self._labels()
                res["label_changed"] = sum(1 for p in ports if labels.get(p, 0) > 1)
                res["timeout_rehash"] = self._rehashes() - rehash0
                res["moved_total"] = broken0
                self.log(
                    f"{mode}: {res['label_changed']} of {res['opened']} connections changed "
                    f"label ({res['timeout_rehash']} RTO rehashes), moved {broken0}"
                )
            finally:
                holder.close()
        return res


def format_table(result: dict[str, Any]) -> str:
    lines = [
        f"{result['connections']} IPv6 connections per mode ({result['lab']}); lb hashes on "
        "the flow label; mid drops client → VIP packets for a moment per round"
    ]
    for mode, r in result["modes"].items():
        lines.append(
            f"{mode:7} label changed {r['label_changed']:5} of {r['opened']}  RTO rehashes "
            f"{r['timeout_rehash']:5}  moved {r['moved_total']:5}"
        )
    return "\n".join(lines)
