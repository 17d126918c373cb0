"""`bench pcc --modes eos`: the resilient-ecmp lab with its router playing an Arista switch.

On lb: the eAPI test switch in its lab flavour (`dfagent lab eapi-switch --datapath
linux`: a DirectFlow flow steers lb's real forwarding) and the mirror shim (one ERSPAN
session per ECMP member interface, as a switch's egress mirror sessions). The agents are
`dfagent run` with `backend: eos` (profile arista-7050x, DirectFlow pins over one pyeapi
session each, idle timeout 300 s): the mirrored SYN's session names the server, the flow's
family picks its v4 or v6 next hop, and the pin goes to the switch in eAPI batches.

Where the agents run (``agents``):

* ``servers`` (the default, the product's design): one agent on each of s1–s4, the mirror
  destination is the VIP, so lb's own ECMP delivers each mirrored SYN to one of the servers
  announcing it; each agent pins with its own flow-name prefix on the one switch (reached at
  lb's address on its link), and none touches another's flows.
* ``lb``: one agent on the router itself, mirrors to 127.0.0.1.

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

from dfagent.lab import mirror_shim, runner
from dfagent.lab.eapi.linux_datapath import TABLE
from dfagent.lab.errors import LabError
from dfagent.lab.retry import wait_until
from dfagent.lab.state import LabState

EAPI_PORT = 6980
USER = "dfagent"
PASSWORD_ENV = "DFAGENT_BENCH_EAPI_PASSWORD"
PASSWORD = "bench-pcc-eos"  # a lab switch in a namespace of its own; nothing to protect
AGENT_PLACES = ("servers", "lb")


class EosLab:
    """The switch, the mirror shim and the agents of one run; :meth:`stop` ends them all."""

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
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.env = {**os.environ, PASSWORD_ENV: PASSWORD, "DFAGENT_EAPI_SWITCH_PASSWORD": PASSWORD}

    # ── start ───────────────────────────────────────────────────────────────────────
    def start(self) -> None:
        self._start_switch()
        hosts = list(self.servers) if self.where == "servers" else ["lb"]
        for host in hosts:
            self._start_agent(host)
        for host in hosts:
            self._wait_agent(host)
        collector = self.vips[0] if self.where == "servers" else "127.0.0.1"
        members = {dev: int(name[1:]) for name, (_, _, dev, _) in self.servers.items()}
        state = self.state
        self.procs["shim"] = mirror_shim.spawn(
            lambda argv: runner.exec_argv(state, "lb", argv),
            members,
            self.run_dir / "mirror-shim.log",
            collector=collector,
        )

    def _spawn(self, node: str, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        with open(self.run_dir / f"{name}.log", "ab") as log:
            proc = subprocess.Popen(runner.exec_argv(self.state, node, argv), stdout=log,
                                    stderr=subprocess.STDOUT, env=self.env)  # fmt: skip
        self.procs[name] = proc
        return proc

    def _start_switch(self) -> None:
        host = "0.0.0.0" if self.where == "servers" else "127.0.0.1"
        vtysh = f"vtysh --vty_socket {runner.frr_dir_of(self.state, 'lb')}"
        argv = _dfagent("lab", "eapi-switch", "--host", host, "--port", str(EAPI_PORT),
                        "--user", USER, "--hostname", "lb", "--datapath", "linux",
                        "--vtysh", vtysh)  # fmt: skip
        proc = self._spawn("lb", "eapi-switch", argv)
        log = self.run_dir / "eapi-switch.log"

        def listening() -> bool:
            if proc.poll() is not None:
                raise LabError(f"the eAPI test switch exited ({proc.returncode}): see {log}")
            return "eAPI test switch" in log.read_text(errors="replace")

        wait_until(listening, 30, 0.1, f"the eAPI test switch's start line in {log}")

    def _config(self, host: str) -> dict[str, Any]:
        if host == "lb":
            endpoint, sources = f"127.0.0.1:{EAPI_PORT}", ["127.0.0.1"]
        else:
            v4 = self.servers[host][0]
            endpoint = f"{v4.rsplit('.', 1)[0]}.1:{EAPI_PORT}"  # lb's address on the link
            sources = [f"{s[0].rsplit('.', 1)[0]}.1" for s in self.servers.values()]
        return {
            "vips": [{"prefix": f"{self.vips[0]}/32", "mode": "mirror"},
                     {"prefix": f"{self.vips[1]}/128", "mode": "mirror"}],
            "mirror": {"sources": sources,
                       "sessions": {int(n[1:]): n for n in self.servers}},
            "nexthops": {n: [s[0], s[1]] for n, s in self.servers.items()},
            "backend": {"type": "eos", "eos": {
                "profile": "arista-7050x", "transport": "http", "endpoint": endpoint,
                "username": USER, "password_env": PASSWORD_ENV, "name": "lb",
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
        """Agents and shim first, the switch last (its SIGTERM removes its nft table)."""
        order = [n for n in self.procs if n != "eapi-switch"] + ["eapi-switch"]
        for name in order:
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
