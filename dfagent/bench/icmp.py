"""`dfagent bench icmp`: do ICMP errors about a pinned flow reach the pinned server?

RFC 7690's case: a router between the client and the VIP (``mid``, whose link toward the
client has MTU 1400) sends "fragmentation needed" / "packet too big" to the VIP about a
server → client packet. lb hashes that ICMP packet on its own header (mid's address → VIP,
no ports), so with plain ECMP every error from mid goes to one server, whichever the flow
is on. dfagent's kernel and map modes: conntrack finds the flow's entry from the quoted
packet (the error is RELATED, original direction), its ct mark is the pin, and the restore
rule routes the error to the flow's server. Map mode copies a pin into the ct mark on the
flow's first packet after the pin arrived; an error that comes before that packet (the
``opened`` round: right after the handshake and one request) is looked up in the pin maps
by its flow's conntrack tuple (``ct original ip saddr . … vmap @pin4``: nft 1.0.6 rejects
the quoted inner header itself, raw ``@th`` payloads being "datatype mismatch" against the
maps' typed keys).

Per mode, on a fresh lab: N connections (v4 and v6); one forged error per connection from
mid (:mod:`dfagent.lab.icmp_errors`: out of window and MTU 1500, so no server's state
changes), counted where raw sockets on s1..s4 see them (right server / another / none):
right after the connections opened, again after each sent a request, and after drain s1;
and real path MTU discovery: every connection — those
pinned to the drained s1 included — asks for a 20 kB reply that only gets through once its
server learned the smaller MTU from mid's real ICMP error.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from dfagent.bench.midlab import CLIENT4, CLIENT6, LineProc, MidBench
from dfagent.bench.pcc import EVENTS, PORT, SERVERS, VIP4, VIP6, Holder

BIG = 20_000  # bytes: about 15 full-size segments, each larger than mid's MTU toward the client


class IcmpBench(MidBench):
    def _errors_round(self, holder: Holder) -> dict[str, Any]:
        """One forged error per alive connection; where each one was delivered."""
        flows = holder.ask("ports")["flows"]
        watchers = {
            s: LineProc(self, s, "dfagent.lab.icmp_errors", "watch", "--vip", VIP4, "--vip", VIP6)
            for s in SERVERS
        }
        try:
            for w in watchers.values():
                if w.line() != "ready":
                    raise RuntimeError(f"{w.name}: not ready")
            sent = json.loads(
                self.on(
                    "mid",
                    *_tool("send", "--client", CLIENT4, "--client", CLIENT6),
                    stdin=json.dumps(flows),
                )  # fmt: skip
            )["sent"]
            time.sleep(1.0)
            seen: dict[tuple[int, int], list[str]] = {}
            for s, w in watchers.items():
                w.send()
                for fam, port in w.reply()["ports"]:
                    seen.setdefault((fam, port), []).append(s)
        finally:
            for w in watchers.values():
                w.close()
        right = wrong = missing = 0
        wrong_to: dict[str, int] = {}
        for vip, port, server in flows:
            got = seen.get((6 if ":" in vip else 4, port), [])
            if server in got:
                right += 1
            elif got:
                wrong += 1
                for g in got:
                    wrong_to[g] = wrong_to.get(g, 0) + 1
            else:
                missing += 1
        return {"sent": sent, "right": right, "wrong": wrong, "missing": missing,
                "wrong_to": dict(sorted(wrong_to.items()))}  # fmt: skip

    def measure(self, mode: str) -> dict[str, Any]:
        res: dict[str, Any] = {"rounds": []}
        with self.fresh_lab(mode):
            assert self.state is not None
            holder = Holder(self.state)
            try:
                opened = holder.ask("open", addrs=[VIP4, VIP6], port=PORT, count=self.n)
                res["opened"], res["by_server"] = opened["opened"], opened["by_server"]
                # right after the handshake and one request: map mode's pins are not in the
                # ct marks yet (copied on the flow's next packet)
                rnd = {"event": "opened", **self._errors_round(holder)}
                res["rounds"].append(rnd)
                self._log_round(mode, rnd)
                holder.ask("check")  # every flow sends a packet: the usual case of a PMTU error
                rnd = {"event": "traffic", **self._errors_round(holder)}
                res["rounds"].append(rnd)
                self._log_round(mode, rnd)
                event, members = EVENTS[0]  # drain s1
                self.event(event, members, mode)
                time.sleep(1.0)
                chk = holder.ask("check")
                rnd = {"event": event, "broken": chk["broken"], "alive": chk["alive"],
                       "by_server": chk["by_server"], **self._errors_round(holder)}  # fmt: skip
                res["rounds"].append(rnd)
                self._log_round(mode, rnd)
                pmtu = holder.ask("big", size=BIG, timeout=8.0)
                res["pmtu"] = {"bytes": BIG, "ok": pmtu["ok"], "failed": pmtu["failed"]}
                self.log(f"{mode}: {BIG} B replies after drain s1: ok {pmtu['ok']} "
                         f"failed {pmtu['failed']}")  # fmt: skip
            finally:
                holder.close()
        return res

    def _log_round(self, mode: str, r: dict[str, Any]) -> None:
        self.log(
            f"{mode}: {r['event']:9} ICMP errors sent {r['sent']:5}  to the flow's server "
            f"{r['right']:5}  elsewhere {r['wrong']:5} {r['wrong_to']}  lost {r['missing']}"
        )


def _tool(*args: str) -> list[str]:
    return [sys.executable, "-m", "dfagent.lab.icmp_errors", *args]


def format_table(result: dict[str, Any]) -> str:
    lines = [f"{result['connections']} connections per mode ({result['lab']}); ICMP errors "
             "about each flow, sent by mid to the VIP"]  # fmt: skip
    lines.append(f"{'mode':7} {'after':9} {'sent':>6} {'right':>6} {'wrong':>6} {'lost':>5}")
    for mode, r in result["modes"].items():
        for rnd in r["rounds"]:
            lines.append(
                f"{mode:7} {rnd['event']:9} {rnd['sent']:6} {rnd['right']:6} {rnd['wrong']:6} "
                f"{rnd['missing']:5}"
            )
        p = r["pmtu"]
        lines.append(f"{mode:7} path MTU discovery ({p['bytes']} B replies after drain s1): "
                     f"ok {p['ok']} failed {p['failed']}")  # fmt: skip
    return "\n".join(lines)
