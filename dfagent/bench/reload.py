"""Firewall reloads under live traffic: do pinned connections survive `flush ruleset`?

On the resilient-ecmp lab, for each mode: hold N connections (v4 and v6) through ``lb`` with a
request on each every 100 ms, and ``rounds`` times reload lb's firewall the way Debian does
(``nft -f`` of a config that starts with ``flush ruleset``) and then change the ECMP set
(drain s1, undrain s1 in turn) while the traffic runs. Broken = reset, silence or an answer
from another server at any round trip.

Modes (all with dfagent kernel mode on lb):
* ``repair``: the agent watches nftables and reinstalls its table (the default);
* ``include``: the firewall config includes the agent's nft script after ``flush ruleset``,
  so the reload re-creates dfagent's table in the same transaction;
* ``off``: ``--no-repair`` and no include: what every release before this one did.
"""

from __future__ import annotations

import json
import re
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from dfagent.bench.pcc import SERVERS, VIP4, VIP6, PccBench, _dfagent

MODES = ("repair", "include", "off")
# the operator's own rules, reloaded with ours (a plain stateful firewall)
OPERATOR_RULES = """table inet filter {
  chain input { type filter hook input priority 0; policy accept; ct state established accept; }
}
"""
_REPAIRED = re.compile(r"ts=(\S+ \S+) level=WARNING component=dfagent.linux event=nft-repaired")


class ReloadBench(PccBench):
    def __init__(self, connections: int, rounds: int = 4, log: Any = print) -> None:
        super().__init__(connections, fresh=0, log=log)
        self.rounds = rounds
        self.mode = "repair"

    def _agent_argv(self, mode: str) -> list[str]:
        argv = super()._agent_argv("kernel")
        return argv + (["--no-repair"] if self.mode == "off" else [])

    def _firewall_conf(self) -> Path:
        assert self.state is not None
        conf = Path(self.state.run_dir) / "nftables.conf"
        text = "flush ruleset\n" + OPERATOR_RULES
        if self.mode == "include":
            text += f'include "{self._state_dir()}/dfagent.nft"\n'
        conf.write_text(text)
        return conf

    def reload_mode(self, mode: str) -> dict[str, Any]:
        from dfagent.bench.pcc import Holder

        self.mode = mode
        self._lab_up()
        assert self.state is not None
        holder = Holder(self.state)
        out: dict[str, Any] = {"rounds": []}
        try:
            self._start_agent("kernel")
            opened = holder.ask("open", addrs=[VIP4, VIP6], port=80, count=self.n)
            out["opened"] = opened["opened"]
            conf = self._firewall_conf()
            members = [frozenset({"s2", "s3"}), frozenset({"s1", "s2", "s3"})]
            reloads: list[float] = []
            for r in range(self.rounds):
                holder.send("traffic", seconds=4.0, interval=0.1)
                time.sleep(0.5)
                reloads.append(time.time())
                self._on("lb", ["nft", "-f", str(conf)])
                time.sleep(0.3)  # the ECMP change lands after the reload, as it would
                drain = r % 2 == 0
                (self._drain().drain if drain else self._drain().undrain)(SERVERS["s1"][:2])
                self._wait_servers(members[r % 2])
                res = holder.reply("traffic")
                out["rounds"].append(
                    {
                        "event": "drain s1" if drain else "undrain s1",
                        "broken": res["broken_now"],
                        "rounds": res["rounds"],
                    }
                )
                self.log(
                    f"{mode}: reload + {out['rounds'][-1]['event']}: "
                    f"{res['broken_now']} broken, {res['alive']} alive"
                )
            out["broken"] = sum(x["broken"] for x in out["rounds"])
            out["repair_ms"] = self._repair_latencies(reloads)
            st = self._on(
                "lb",
                _dfagent(
                    "linux", "status", "--json", "--no-count", "--state-dir", self._state_dir()
                ),
                check=False,
            )
            out["table_present_at_end"] = bool(json.loads(st or "{}").get("table"))
        finally:
            holder.close()
            self._lab_down()
        return out

    def _repair_latencies(self, reloads: list[float]) -> list[float]:
        """Milliseconds from each reload to the agent's next `nft-repaired` log line."""
        assert self.state is not None
        log = Path(self.state.run_dir) / "agent-kernel.log"
        stamps = []
        for m in _REPAIRED.finditer(log.read_text(errors="replace") if log.exists() else ""):
            stamps.append(datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp())
        out = []
        for t in reloads:
            after = [s for s in stamps if s >= t - 0.01]
            if after:
                out.append(round((min(after) - t) * 1000, 1))
        return out

    def run(self, modes: list[str]) -> dict[str, Any]:
        return {
            "connections": self.n,
            "rounds": self.rounds,
            "modes": self.per_mode(modes, MODES, self.reload_mode),
        }


def format_table(result: dict[str, Any]) -> str:
    lines = [
        f"{result['connections']} connections, {result['rounds']} firewall reloads (flush "
        "ruleset) each followed by an ECMP change, a request per connection every 100 ms",
        f"{'mode':8} {'broken':>7}  per reload          reload→repaired (ms)",
    ]
    for mode, r in result["modes"].items():
        per = " ".join(str(x["broken"]) for x in r["rounds"])
        lat = " ".join(str(x) for x in r.get("repair_ms", [])) or "-"
        lines.append(f"{mode:8} {r['broken']:7}  {per:18}  {lat}")
    return "\n".join(lines)
