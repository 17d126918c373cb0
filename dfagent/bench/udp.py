"""`dfagent bench udp`: long-lived UDP sessions (QUIC-like) through drain, add and BGP-down.

Per mode, on a fresh lab: N UDP sessions (v4 and v6; one 4-tuple each, a request and a reply
every 100 ms, :mod:`dfagent.lab.udp_sessions`) to the servers' UDP service, kept running
while bench pcc's events happen (drain s1, s4 announces, s2's BGP session down, undrain s1).
A session is lost when another server answers it (QUIC: a stateless reset) or it goes silent
for 3 s. Kernel mode pins UDP with ``--protocols tcp,udp``; ``kernel-tcp`` is kernel mode
with the default protocols (TCP only), so UDP follows ECMP there.

Conntrack's UDP timeouts bound a UDP pin: the bench sets lb's
``nf_conntrack_udp_timeout_stream`` to a short value, stops the traffic at the end, and
counts lb's pinned UDP entries before and after that timeout (the pins end with the entries;
dfagent keeps no UDP state of its own).
"""

from __future__ import annotations

import time
from typing import Any

from dfagent.bench.midlab import LineProc, MidBench
from dfagent.bench.pcc import EVENTS, VIP4, VIP6
from dfagent.core.marks import DEFAULT_MARK_MASK

UDP_PORT = 443
STREAM_TIMEOUT = 8  # seconds: lb's nf_conntrack_udp_timeout_stream during the bench
SETTLE = 2.0  # seconds of traffic after each event before it is counted


class UdpBench(MidBench):
    modes = ("ecmp", "kernel", "kernel-tcp")

    def _agent_argv(self, mode: str) -> list[str]:
        argv = super()._agent_argv(mode.removesuffix("-tcp"))
        return argv if mode.endswith("-tcp") else [*argv, "--protocols", "tcp,udp"]

    def prepare(self, mode: str) -> None:
        self.on(
            "lb", "sysctl", "-qw", f"net.netfilter.nf_conntrack_udp_timeout_stream={STREAM_TIMEOUT}"
        )

    def _pinned_udp(self) -> int:
        """lb's UDP conntrack entries to the VIPs that carry a dfagent mark."""
        n = 0
        for fam, vip in (("ipv4", VIP4), ("ipv6", VIP6)):
            out = self.on("lb", "conntrack", "-L", "-f", fam, "-p", "udp", "--dst", vip,
                          check=False)  # fmt: skip
            for line in out.splitlines():
                mark = next((f for f in line.split() if f.startswith("mark=")), "mark=0")
                n += bool(int(mark[5:]) & DEFAULT_MARK_MASK)
        return n

    def measure(self, mode: str) -> dict[str, Any]:
        res: dict[str, Any] = {"events": []}
        with self.fresh_lab(mode):
            ses = LineProc(self, "client", "dfagent.lab.udp_sessions")
            try:
                opened = ses.ask("open", addrs=[VIP4, VIP6], port=UDP_PORT, count=self.n)
                res["opened"], res["by_server"] = opened["opened"], opened["by_server"]
                self.log(f"{mode}: {res['opened']} UDP sessions {res['by_server']}")
                ses.ask("start", interval=0.1, lost_after=3.0)
                lost0 = 0
                for event, members in EVENTS:
                    self.event(event, members, mode.removesuffix("-tcp"))
                    time.sleep(SETTLE)
                    st = ses.ask("stats")
                    ev = {"event": event, "lost": st["lost"] - lost0, "alive": st["alive"],
                          "moved": st["moved"], "silent": st["silent"]}  # fmt: skip
                    lost0 = st["lost"]
                    res["events"].append(ev)
                    self.log(f"{mode}: {event:14} alive {ev['alive']:5}  lost {ev['lost']:5}")
                st = ses.ask("stop")
                res.update(lost_total=st["lost"], lost_from=st["lost_from"],
                           rounds=st["rounds"], max_gap=st["max_gap"])  # fmt: skip
                res["pinned_udp_entries"] = self._pinned_udp()
                time.sleep(STREAM_TIMEOUT + 2)
                res["pinned_udp_entries_after_timeout"] = self._pinned_udp()
                self.log(
                    f"{mode}: lost {st['lost']} of {res['opened']} ({st['rounds']} rounds, "
                    f"longest gap {st['max_gap']} s); pinned UDP entries "
                    f"{res['pinned_udp_entries']} → {res['pinned_udp_entries_after_timeout']} "
                    f"{STREAM_TIMEOUT + 2} s after the traffic stopped"
                )
            finally:
                ses.close()
        res["udp_timeout_stream"] = STREAM_TIMEOUT
        return res


def format_table(result: dict[str, Any]) -> str:
    lines = [f"{result['connections']} UDP sessions per mode ({result['lab']}), a packet "
             "both ways every 100 ms"]  # fmt: skip
    lines.append(f"{'mode':10} {'event':14} {'alive':>6} {'lost':>6}")
    for mode, r in result["modes"].items():
        for ev in r["events"]:
            lines.append(f"{mode:10} {ev['event']:14} {ev['alive']:6} {ev['lost']:6}")
        lines.append(
            f"{mode:10} {'total':14} {'':6} {r['lost_total']:6}   pinned UDP entries "
            f"{r['pinned_udp_entries']} → {r['pinned_udp_entries_after_timeout']} after "
            f"conntrack's {r['udp_timeout_stream']} s stream timeout"
        )
    return "\n".join(lines)
