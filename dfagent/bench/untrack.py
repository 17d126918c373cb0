"""Non-VIP traffic through a dfagent router: not tracked, and forwarded as fast as before.

dfagent's ``ct`` rules switch conntrack on for the whole namespace; by default it untracks
every packet neither to nor from a VIP (raw priority, ``ruleset.render_untrack``). On the
resilient-ecmp lab (fresh), with the kernel-mode agent on lb:

1. **no entry**: a TCP connection and UDP packets from the client to s1's own address
   (not a VIP) leave no conntrack entry on lb, while VIP connections do;
2. **forwarding rate**: UDP datagrams (64 bytes, ``flows`` source ports) from the client to
   s1's address, counted as lb's packets out of s1's interface per second; rounds
   interleaved (so drift on a shared machine hits all alike): ``without`` (no dfagent on
   lb: its table removed by ``linux cleanup``), ``dfagent`` (agent running, non-VIP
   untracked) and ``tracked`` (agent with ``--track-others``: what it cost before). The
   ratios are medians of per-round ratios.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from typing import Any

from dfagent.bench.pcc import AGENT_SETTLE, SERVERS, VIP4, VIP6, Holder, PccBench, _dfagent
from dfagent.lab.errors import LabError

TARGET = SERVERS["s1"][0]  # s1's own address: routed by lb, no VIP
TARGET6 = SERVERS["s1"][1]
MODES = ("without", "dfagent", "tracked")


class UntrackBench(PccBench):
    def __init__(
        self, rounds: int = 5, seconds: float = 2.0, flows: int = 256, log: Any = print
    ) -> None:
        super().__init__(10, fresh=0, log=log, rates=False)
        self.rounds, self.seconds, self.flows = rounds, seconds, flows
        self.track_others = False

    def _agent_argv(self, mode: str) -> list[str]:
        argv = super()._agent_argv("kernel")
        return argv + (["--track-others"] if self.track_others else [])

    def _tx(self, dev: str = "eth2") -> int:
        link = json.loads(self._on("lb", ["ip", "-j", "-s", "link", "show", dev]))[0]
        return int(link["stats64"]["tx"]["packets"])

    def _rate(self) -> tuple[float, float]:
        """Packets lb forwarded per second, and per CPU second of the sending process."""
        before = self._tx()
        got = json.loads(
            self._on(
                "client",
                [
                    sys.executable,
                    "-m",
                    "dfagent.lab.udpblast",
                    "--dst",
                    TARGET,
                    "--seconds",
                    str(self.seconds),
                    "--flows",
                    str(self.flows),
                ],
            )  # fmt: skip
        )
        n = self._tx() - before
        return n / float(got["seconds"]), n / max(1e-3, float(got["cpu_s"]))

    def entries(self) -> dict[str, int]:
        """lb's conntrack entries to s1's own addresses, and to the VIPs."""
        listing = self._on("lb", ["conntrack", "-L", "-f", "ipv4"], check=False)
        listing += self._on("lb", ["conntrack", "-L", "-f", "ipv6"], check=False)
        lines = listing.splitlines()
        return {
            "non_vip": sum(f"dst={TARGET} " in ln or f"dst={TARGET6} " in ln for ln in lines),
            "vip": sum(f"dst={VIP4} " in ln or f"dst={VIP6} " in ln for ln in lines),
        }

    def _non_vip_traffic(self, holder: Holder) -> dict[str, int]:
        direct = holder.ask("rate", addrs=[TARGET, TARGET6], port=80, seconds=0.5)
        self._on(
            "client",
            [sys.executable, "-m", "dfagent.lab.udpblast", "--dst", TARGET, "--seconds", "0.2",
             "--flows", "16"],
        )  # fmt: skip
        return {"tcp_connections": int(direct["rate"] * 0.5), "errors": int(direct["errors"])}

    def _agent(self, on: bool, track_others: bool = False) -> None:
        if on:
            self.track_others = track_others
            self._start_agent("kernel")
            time.sleep(AGENT_SETTLE)
        else:
            self._stop_agent()
            self._on("lb", _dfagent("linux", "cleanup", "--state-dir", self._state_dir()))
            self._on("lb", ["conntrack", "-F"], check=False)  # lb's own table only

    def run(self) -> dict[str, Any]:  # type: ignore[override]
        self._lab_up()
        assert self.state is not None
        holder = Holder(self.state)
        out: dict[str, Any] = {"rounds": self.rounds, "seconds": self.seconds,
                               "flows": self.flows}  # fmt: skip
        try:
            # 1. which flows have entries, with the agent untracking others
            self._agent(True)
            held = holder.ask("open", addrs=[VIP4, VIP6], port=80, count=20)
            sent = self._non_vip_traffic(holder)
            out["entries"] = {**self.entries(), "vip_connections": held["opened"], **sent}
            holder.ask("close")
            self.log(f"entries with dfagent: {out['entries']}")
            self._agent(False)
            # 2. forwarding rate, interleaved rounds
            rates: dict[str, list[tuple[float, float]]] = {m: [] for m in MODES}
            for _ in range(self.rounds):
                rates["without"].append(self._rate())
                self._agent(True)
                rates["dfagent"].append(self._rate())
                self._agent(False)
                self._agent(True, track_others=True)
                rates["tracked"].append(self._rate())
                self._agent(False)
            for key, i in (("pps", 0), ("per_cpu_s", 1)):
                got = {m: [round(x[i]) for x in v] for m, v in rates.items()}
                out[key] = got
                out[f"median_{key}"] = {m: round(statistics.median(v)) for m, v in got.items()}
                for m in ("dfagent", "tracked"):
                    ratios = [a / b for a, b in zip(got[m], got["without"], strict=True)]
                    out[f"ratio_{m}" + ("" if i == 0 else "_cpu")] = round(
                        statistics.median(ratios), 3
                    )
            self.log(f"forwarding rate: {out['pps']}; per CPU second: {out['per_cpu_s']}")
        finally:
            holder.close()
            self._lab_down()
        if out.get("entries", {}).get("tcp_connections", 0) == 0:
            raise LabError("no non-VIP connection was made: the measurement means nothing")
        return out


def format_table(r: dict[str, Any]) -> str:
    e = r["entries"]
    return "\n".join(
        [
            f"conntrack entries on lb with dfagent: to VIPs {e['vip']} "
            f"({e['vip_connections']} connections held), to s1's own address {e['non_vip']} "
            f"(after {e['tcp_connections']} TCP connections and UDP from 16 ports)",
            f"non-VIP forwarding rate (64-byte UDP, {r['flows']} flows, {r['rounds']} rounds "
            f"of {r['seconds']} s), packets/s: "
            + ", ".join(f"{m} {v}" for m, v in r["median_pps"].items()),
            f"ratio to no dfagent (median of rounds): dfagent {r['ratio_dfagent']}, "
            f"non-VIP tracked {r['ratio_tracked']}",
            "packets forwarded per CPU second of the sender (the whole veth path runs in its "
            "system time; steadier on a busy host): "
            + ", ".join(f"{m} {v}" for m, v in r["median_per_cpu_s"].items())
            + f"; ratio dfagent {r['ratio_dfagent_cpu']}, tracked {r['ratio_tracked_cpu']}",
        ]
    )
