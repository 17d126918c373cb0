"""`bench pcc --modes eos`: the resilient-ecmp-eos lab, whose router lb is an Arista switch.

The lab (labs/resilient-ecmp-eos) gives lb kind arista_ceos; the namespace runner plays it
with the eAPI test switch and its Linux datapath (a DirectFlow flow steers lb's real
forwarding), and the switch's startup-config has one monitor session per server-facing port
(`source EthernetN tx`, `destination tunnel mode gre … destination 1.1.1.1`): the switch
itself sends each SYN leaving a member in GRE + ERSPAN (session id = the member) to the VIP.
The agents are `dfagent run` with `backend: eos` (profile arista-7050x, DirectFlow pins
over one pyeapi session each, idle timeout 300 s): the mirrored SYN's session names the
server, the flow's family picks its v4 or v6 next hop, and the pin goes to the switch in
eAPI batches. How to reach the switch (port, user, password) is the lab's
(`<run dir>/lb/eapi.json`).

Where the agents run (``agents``):

* ``servers`` (the default, the product's design): one agent on each of s1–s4, the mirror
  destination is the VIP, so lb's own ECMP delivers each mirrored SYN to one of the servers
  announcing it; each agent pins with its own flow-name prefix on the one switch (reached at
  lb's address on its link), and none touches another's flows.
* ``lb``: one agent on the router itself; the bench points the monitor sessions at
  127.0.0.1 over eAPI first, as an operator would for an on-box agent.

The events stay those of the other modes (drain via FRR on lb, BGP on the servers): the
switch's own drain actuator is tested against the test switch in tests/eos.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from dfagent.lab import eos_switch, runner
from dfagent.lab.eapi.linux_datapath import TABLE
from dfagent.lab.errors import LabError
from dfagent.lab.retry import wait_until
from dfagent.lab.state import LabState

LAB = "resilient-ecmp-eos"
PASSWORD_ENV = "DFAGENT_BENCH_EAPI_PASSWORD"
AGENT_PLACES = ("servers", "lb")


class EosLab:
    """The agents of one run on the lab's switch; :meth:`stop` ends them."""

    def __init__(
        self,
        state: LabState,
        servers: dict[str, tuple[str, str, str, int]],
        vips: tuple[str, str],
        agents: str = "servers",
    ) -> None:
        if agents not in AGENT_PLACES:
            raise LabError(f"eos agents run on {' or '.join(AGENT_PLACES)}, not {agents!r}")
        self.state = state
        self.servers = servers
        self.vips = vips
        self.where = agents
        self.run_dir = Path(state.run_dir)
        self.switch = eos_switch.connection(state, "lb")
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.env = {**os.environ, PASSWORD_ENV: self.switch["password"]}

    # ── start ───────────────────────────────────────────────────────────────────────
    def start(self) -> None:
        if self.where == "lb":  # the mirrors come to the agent on the switch itself
            lines = [f"monitor session {n} destination tunnel mode gre source 127.0.0.1 "
                     "destination 127.0.0.1" for n in self.servers]  # fmt: skip
            eos_switch.run_cmds(self.state, "lb", ["configure", *lines, "end"])
        hosts = list(self.servers) if self.where == "servers" else ["lb"]
        for host in hosts:
            self._start_agent(host)
        for host in hosts:
            self._wait_agent(host)

    def _spawn(self, node: str, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        with open(self.run_dir / f"{name}.log", "ab") as log:
            proc = subprocess.Popen(runner.exec_argv(self.state, node, argv), stdout=log,
                                    stderr=subprocess.STDOUT, env=self.env)  # fmt: skip
        self.procs[name] = proc
        return proc

    def _config(self, host: str) -> dict[str, Any]:
        port = self.switch["port"]
        if host == "lb":
            endpoint, sources = f"127.0.0.1:{port}", ["127.0.0.1"]
        else:
            v4 = self.servers[host][0]
            endpoint = f"{v4.rsplit('.', 1)[0]}.1:{port}"  # lb's address on the link
            sources = list(self.switch["addresses"])  # a monitor session's GRE source is one
        return {
            "vips": [{"prefix": f"{self.vips[0]}/32", "mode": "mirror"},
                     {"prefix": f"{self.vips[1]}/128", "mode": "mirror"}],
            "mirror": {"sources": sources,
                       "sessions": {int(n[1:]): n for n in self.servers}},
            "nexthops": {n: [s[0], s[1]] for n, s in self.servers.items()},
            "backend": {"type": "eos", "eos": {
                "profile": "arista-7050x", "transport": self.switch["transport"],
                "endpoint": endpoint, "username": self.switch["username"],
                "password_env": PASSWORD_ENV, "name": "lb",
                "flow_prefix": f"dfa_{host}", "reconcile_interval": 5,
            }},
            "drain": {"actuator": "none"},
            "api": {"socket": self._socket(host)},
            "metrics": {"address": None},
        }  # fmt: skip

    def _socket(self, host: str) -> str:
        return str(self.run_dir / f"eos-agent-{host}.sock")

    def _start_agent(self, host: str) -> None:
        path = self.run_dir / f"eos-agent-{host}.yaml"
        path.write_text(yaml.safe_dump(self._config(host)))
        self._spawn(host, f"eos-agent-{host}", _dfagent("run", "--config", str(path)))

    def _status(self, host: str) -> dict[str, Any]:
        """`dfagent status --json` of one agent ({} when it does not answer)."""
        argv = _dfagent("status", "--json", "--socket", self._socket(host))
        r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        try:
            return dict(json.loads(r.stdout)) if r.returncode == 0 else {}
        except json.JSONDecodeError:
            return {}

    def _wait_agent(self, host: str, timeout: float = 60) -> None:
        """Until the agent answers on its API socket (it has set the switch up by then)."""
        proc = self.procs[f"eos-agent-{host}"]

        def healthy() -> bool:
            if proc.poll() is not None:
                raise LabError(f"the eos agent on {host} exited ({proc.returncode}): see "
                               f"{self.run_dir}/eos-agent-{host}.log")  # fmt: skip
            return bool(self._status(host).get("healthy"))

        wait_until(healthy, timeout, 0.2, f"the eos agent on {host} healthy")

    def pinned_by_agent(self) -> dict[str, int]:
        """Each agent's pins (its pin table): which agents the mirrored SYNs reached."""
        hosts = list(self.servers) if self.where == "servers" else ["lb"]
        return {h: int(self._status(h).get("pinned", -1)) for h in hosts}

    # ── figures ─────────────────────────────────────────────────────────────────────
    def pins(self, want: int, quiet: float = 3.0, timeout: float = 30.0) -> int:
        """Flows steering lb's datapath (elements of the switch's nft maps) once the agents
        have caught up: ``want`` of them, or no change for ``quiet`` seconds (the last fresh
        connections' SYNs may still be in a micro-batch or an eAPI request)."""
        last, since = -1, time.monotonic()
        deadline = since + timeout
        while time.monotonic() < deadline:
            now = self._elements()
            if now != last:
                last, since = now, time.monotonic()
            if now >= want or time.monotonic() - since >= quiet:
                break
            time.sleep(0.2)
        return last

    def wait_pins(self, n: int, timeout: float = 20.0) -> int:
        """Until ``n`` flows steer lb (the held connections' pins are in before the first
        event) or ``timeout``; a pin still missing then shows as a broken connection."""
        end = time.monotonic() + timeout
        while (got := self._elements()) < n and time.monotonic() < end:
            time.sleep(0.1)
        return got

    def _elements(self) -> int:
        total = 0
        for name in ("flows4", "flows6"):
            argv = runner.exec_argv(self.state, "lb", ["nft", "-j", "list", "map", "inet",
                                                       TABLE, name])  # fmt: skip
            out = subprocess.run(argv, capture_output=True, text=True, timeout=60)
            if out.returncode != 0:
                raise LabError(f"lb: nft list map {name}: {out.stderr.strip()}")
            total += sum(len(o["map"].get("elem", [])) for o in json.loads(out.stdout)["nftables"]
                         if "map" in o)  # fmt: skip
        return total

    def agents_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise LabError(f"{name} exited ({proc.returncode}): see {self.run_dir}/{name}.log")

    # ── stop ────────────────────────────────────────────────────────────────────────
    def stop(self) -> None:
        """The agents (the switch is the lab's: `lab down` stops it with lb)."""
        for name in list(self.procs):
            proc = self.procs.pop(name, None)
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def _dfagent(*args: str) -> list[str]:
    return [sys.executable, "-m", "dfagent.cli.main", *args]
