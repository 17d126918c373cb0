"""Mirror loss: broken connections when a share of the mirrored SYNs never reaches the agent.

Switches drop mirror copies under load. In map mode a flow whose SYN mirror is lost has no
pin and rides plain ECMP: the next change of the ECMP set can move it. The second chance
(``--synack``): the server's SYN-ACK, mirrored where it enters from a member, pins the flow.

On the resilient-ecmp lab, per mode on a fresh lab, and per loss share in turn: the mirror
shim drops that share of the mirrored SYNs (seeded; ``map-synack-lossy`` drops the same share
of the SYN-ACK copies too, independently); N connections (v4 and v6) are opened; then, with a
request on every connection every 100 ms, s4 starts announcing and s1 is drained. Broken =
reset, silence or an answer from another server at any round trip. The connections are then
closed and the events undone before the next share.

Modes: ``ecmp`` (plain multipath, no dfagent: the loss does not matter), ``map`` (map mode,
SYN mirrors only), ``map-synack`` (map mode with the second chance; SYN-ACK mirrors whole),
``map-synack-lossy`` (the second chance, its copies lost at the same share), ``map-record``
(no SYN-ACK mirror; the agent's ``--record``: lb, which sees both directions, records where
the route sent a flow without a pin in its conntrack mark, as kernel mode does).
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from dfagent.bench.pcc import INITIAL, SERVERS, VIP4, VIP6, Holder, PccBench
from dfagent.lab import mirror_node, mirror_shim
from dfagent.lab.errors import LabError

MODES = ("ecmp", "map", "map-synack", "map-synack-lossy", "map-record")
LOSSES = (0.0, 0.01, 0.05, 0.2)
EVENTS = (("s4 announces", frozenset({"s1", "s2", "s3", "s4"})),
          ("drain s1", frozenset({"s2", "s3", "s4"})))  # fmt: skip
SETTLE = 1.0  # seconds after the opens, so every mirrored SYN(-ACK) reached the agent
TRAFFIC = 0.1  # seconds between requests on each connection


class MirrorLossBench(PccBench):
    def __init__(
        self,
        connections: int,
        losses: tuple[float, ...] = LOSSES,
        log: Any = print,
        seed: int = 1,
    ) -> None:
        super().__init__(connections, fresh=0, log=log, rates=False)
        self.losses = losses
        self.seed = seed  # the n-th share's shim draws from seed + n: modes lose alike
        self.mode = "map"

    def _agent_argv(self, mode: str) -> list[str]:
        argv = super()._agent_argv("map")
        if self.mode == "map-record":
            return argv + ["--record"]
        return argv + (["--synack"] if self.mode.startswith("map-synack") else [])

    def _start_agent(self, mode: str) -> None:
        super()._start_agent("map")
        self._stop_shim()  # each share gets its own shim (_shim)

    def _shim(self, loss: float, seed: int) -> None:
        assert self.state is not None
        state = self.state
        synack = self.mode.startswith("map-synack")
        self.shim = mirror_node.spawn(
            state,
            "lb",
            {dev: int(name[1:]) for name, (_, _, dev, _) in SERVERS.items()},
            self._shim_log(),
            synack=synack,
            loss=loss,
            synack_loss=loss if self.mode == "map-synack-lossy" else 0.0,
            seed=seed,
        )

    def _shim_log(self) -> Path:
        assert self.state is not None
        return Path(self.state.run_dir) / "mirror-shim.log"

    def _stop_shim(self) -> dict[str, int]:
        shim, self.shim = self.shim, None
        if shim is None:
            return {}
        shim.send_signal(signal.SIGTERM)
        try:
            shim.wait(timeout=10)
        except subprocess.TimeoutExpired:
            shim.kill()
            shim.wait()
        return mirror_shim.read_stats(self._shim_log())

    def run_mode(self, mode: str) -> dict[str, Any]:  # type: ignore[override]
        if mode not in MODES:
            raise LabError(f"unknown mode {mode!r}; known: {', '.join(MODES)}")
        self.mode = mode
        self._lab_up()
        assert self.state is not None
        rounds = []
        try:
            if mode != "ecmp":
                self._start_agent("map")
            for i, loss in enumerate(self.losses):
                holder = Holder(self.state)
                try:
                    rounds.append(self._one(holder, loss, seed=self.seed + i))
                finally:
                    holder.close()  # its connections end (FIN) with it
                self._undo()
        finally:
            self._stop_shim()
            self._lab_down()
        return {"rounds": rounds}

    def _one(self, holder: Holder, loss: float, seed: int) -> dict[str, Any]:
        mapped = self.mode != "ecmp"
        pins_before = 0
        if mapped:
            self._shim(loss, seed)
            pins_before = self._count_pins("map")
        opened = holder.ask("open", addrs=[VIP4, VIP6], port=80, count=self.n)
        out: dict[str, Any] = {"loss": loss, "opened": opened["opened"]}
        if mapped:
            time.sleep(SETTLE)
            out["mirror"] = self._stop_shim()
            out["pins"] = self._count_pins("map") - pins_before
        broken = 0
        for event, members in EVENTS:
            holder.send("traffic", seconds=3.0, interval=TRAFFIC)
            time.sleep(0.3)
            if event == "drain s1":
                self._drain().drain(SERVERS["s1"][:2])
            else:
                self._announce_s4(True)
            self._wait_servers(members)
            self._wait_agent(members)
            got = holder.reply("traffic")
            broken += got["broken_now"]
            # at least 2 s of traffic after the change reached lb's routes
            got = holder.ask("traffic", seconds=2.0, interval=TRAFFIC)
            broken += got["broken_now"]
        out["broken"] = broken
        out["alive"] = got["alive"]
        mirror = out.get("mirror", {})
        self.log(
            f"{self.mode}: loss {loss:5.0%}  opened {out['opened']:5}  broken {broken:5}  "
            f"pins {out.get('pins', '-')}  mirror {mirror}"
        )
        return out

    def _undo(self) -> None:
        self._drain().undrain(SERVERS["s1"][:2])
        self._announce_s4(False)
        self._wait_servers(INITIAL)
        self._wait_agent(INITIAL)

    def run(self, modes: list[str]) -> dict[str, Any]:
        return {
            "connections": self.n,
            "seed": self.seed,
            "losses": list(self.losses),
            "events": [e for e, _ in EVENTS],
            "modes": self.per_mode(modes, MODES, self.run_mode),
        }


def format_table(result: dict[str, Any]) -> str:
    losses = result["losses"]
    lines = [
        f"{result['connections']} connections per share of mirrored SYNs lost, a request on "
        f"each every 100 ms while {' then '.join(result['events'])}; broken connections:",
        f"{'mode':18}" + "".join(f"{f'{x:.0%} lost':>12}" for x in losses),
    ]
    for mode, r in result["modes"].items():
        cells = [f"{x['broken']}/{x['opened']}" for x in r["rounds"]]
        lines.append(f"{mode:18}" + "".join(f"{c:>12}" for c in cells))
    return "\n".join(lines)
