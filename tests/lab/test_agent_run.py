"""`dfagent run` on lb of the resilient-ecmp lab, driven as an operator drives it: the CLI
over the Unix socket → gRPC → the agent's loop → FRR (drain) and the kernel (pins); once in
kernel mode, once in mirror mode (a mirror shim on lb sends the SYNs each member carried).

New connections avoid a drained s1, held ones stay on s1 unbroken, s1's pinned count falls
as they close and `drain --wait` returns 0 at zero; a drain whose connections stay hits its
deadline with a clear message (exit 4); undrain brings s1 back; SIGKILL of the agent during
held traffic and a restart break nothing and keep every mark.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from dfagent.bench.pcc import Holder
from dfagent.lab import checks, mirror_shim, runner, spec
from dfagent.lab.retry import wait_until
from dfagent.lab.state import LabState, load_state

pytestmark = pytest.mark.lab
LAB = "resilient-ecmp"
VIP4, VIP6 = "1.1.1.1", "2001:db8::1"
SERVERS = {f"s{n}": [f"10.2.{n}.2", f"fd00:2:{n}::2"] for n in (1, 2, 3, 4)}


@pytest.fixture
def lab_up() -> Iterator[LabState]:
    the_lab = spec.load(LAB)
    runner.down(LAB)
    state = runner.up(the_lab, log=False)
    try:
        results = checks.run_checks(state, the_lab)
        assert all(r.ok for r in results), [r for r in results if not r.ok]
        yield state
    finally:
        runner.down(LAB)
    assert load_state(LAB) is None


class Agent:
    """`dfagent run` on lb; in mode "mirror" (map mode) a mirror shim on lb stands in for the
    switch's egress mirror sessions: one ERSPAN session per ECMP member interface."""

    def __init__(self, state: LabState, mode: str = "kernel") -> None:
        self.state = state
        self.mode = mode
        self.tmp = Path(tempfile.mkdtemp(prefix="dfagent-run-"))
        os.chmod(self.tmp, 0o755)
        self.sock = str(self.tmp / "dfagent.sock")
        cfg: dict[str, Any] = {
            "vips": [
                {"prefix": f"{VIP4}/32", "mode": mode},
                {"prefix": f"{VIP6}/128", "mode": mode},
            ],
            "linux": {"state_dir": str(self.tmp / "state"), "reconcile_interval": 1},
            "nexthops": SERVERS,
            "drain": {"actuator": "frr", "vtysh": runner.exec_argv(state, "lb", ["vtysh"])},
            "api": {"socket": self.sock},
            "metrics": None,
        }
        if mode == "mirror":
            cfg["mirror"] = {
                "sources": ["127.0.0.1"],
                "sessions": {n: f"%eth{n + 1}" for n in (1, 2, 3, 4)},
            }
        self.config = self.tmp / "dfagent.yaml"
        self.config.write_text(yaml.safe_dump(cfg))
        self.proc: subprocess.Popen[bytes] | None = None
        self.shim: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if self.mode == "mirror" and self.shim is None:
            state = self.state
            self.shim = mirror_shim.spawn(
                lambda argv: runner.exec_argv(state, "lb", argv),
                {f"eth{n + 1}": n for n in (1, 2, 3, 4)},
                self.tmp / "shim.log",
            )
        argv = [sys.executable, "-m", "dfagent.cli.main", "run", "--config", str(self.config)]
        with open(self.tmp / "agent.log", "ab") as log:
            self.proc = subprocess.Popen(
                runner.exec_argv(self.state, "lb", argv), stdout=log, stderr=subprocess.STDOUT
            )

        def ready() -> bool:
            assert self.proc is not None and self.proc.poll() is None, self.log()  # died
            nh = self.cli("nexthops", "--json", check=False)
            return nh.returncode == 0 and (
                sum(n["state"] == "active" for n in json.loads(nh.stdout)) == 6
            )

        wait_until(ready, 30, 0.2, "the agent's six next hops active")

    def cli(self, *args: str, check: bool = True, timeout: float = 120) -> Any:
        p = subprocess.run(
            [sys.executable, "-m", "dfagent.cli.main", *args, "--socket", self.sock],
            capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip
        if check:
            assert p.returncode == 0, (args, p.stdout, p.stderr)
        return p

    def log(self) -> str:
        return (self.tmp / "agent.log").read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(15)
        self.proc = None

    def stop_shim(self) -> None:
        if self.shim is not None and self.shim.poll() is None:
            self.shim.terminate()
            self.shim.wait(15)
        self.shim = None


@pytest.fixture(params=["kernel", "mirror"])
def agent(request: pytest.FixtureRequest, lab_up: LabState) -> Iterator[Agent]:
    a = Agent(lab_up, request.param)
    try:
        yield a
    finally:
        a.stop()
        a.stop_shim()
        subprocess.run(
            runner.exec_argv(lab_up, "lb", [sys.executable, "-m", "dfagent.cli.main", "linux",
                             "cleanup", "--state-dir", str(a.tmp / "state")]),
            capture_output=True, check=False,
        )  # fmt: skip
        subprocess.run(["rm", "-rf", str(a.tmp)], check=False)


def pinned(agent: Agent, name: str) -> int | None:
    rows = json.loads(agent.cli("nexthops", "--json").stdout)
    counts = [n["pinned"] for n in rows if n["name"] == name]
    return None if None in counts else sum(counts)


def test_drain_wait_through_cli_grpc_agent_frr(agent: Agent, lab_up: LabState) -> None:
    agent.start()
    holder = Holder(lab_up)
    try:
        opened = holder.ask("open", addrs=[VIP4, VIP6], port=80, count=90)
        assert opened["opened"] == 90, opened
        on_s1 = opened["by_server"]["s1"]
        assert on_s1 > 0
        if agent.mode == "mirror":  # each connection's SYN, mirrored, became a pin in the map
            wait_for(lambda: pin_map_size(lab_up) >= 90, "90 pins in the pin maps")
        # 1. drain s1 and wait for its connections to end, in the background
        waiter = subprocess.Popen(
            [sys.executable, "-m", "dfagent.cli.main", "drain", "s1", "--wait",
             "--timeout", "90s", "--socket", agent.sock],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        wait_until(  # s1 leaves lb's ECMP set (FRR: local-preference 1)
            lambda: holder.ask("fresh", count=40)["answers"], 30, 0.5,
            "new connections no longer reaching s1", until=lambda fresh: "s1" not in fresh,
        )  # fmt: skip
        chk = holder.ask("check")
        assert chk["broken"] == 0 and chk["by_server"]["s1"] == on_s1, chk  # held ones stay
        wait_for(lambda: pinned(agent, "s1") == on_s1, "s1's pins counted")
        assert waiter.poll() is None  # still waiting: s1 holds pinned flows
        holder.ask("close", server="s1")  # they end: the count falls to 0
        out, err = waiter.communicate(timeout=60)
        assert waiter.returncode == 0, (out, err)
        assert "no pinned flow left" in out, out
        # 2. s2 keeps its connections: --wait hits its deadline, exit 4, drain left in place
        p = agent.cli("drain", "s2", "--wait", "--timeout", "3s", check=False)
        assert p.returncode == 4, (p.stdout, p.stderr)
        assert "still holds" in p.stderr and "undrain" in p.stderr, p.stderr
        assert holder.ask("check")["broken"] == 0
        # 3. undrain: s1 and s2 take new connections again
        agent.cli("undrain", "s1")
        agent.cli("undrain", "s2")
        wait_for(
            lambda: {"s1", "s2"} <= set(holder.ask("fresh", count=60)["answers"]),
            "s1 and s2 back in the ECMP set",
        )
        # 4. the agent is SIGKILLed during held traffic and restarted: nothing breaks
        before = {(n["family"], n["name"]): n["mark"] for n in nexthops(agent)}
        holder.send("traffic", seconds=6.0, interval=0.1)
        time.sleep(1.0)
        agent.stop(signal.SIGKILL)
        agent.start()
        res = holder.reply("traffic")
        assert res["broken_now"] == 0 and res["broken"] == 0, res
        assert {(n["family"], n["name"]): n["mark"] for n in nexthops(agent)} == before
        status = json.loads(agent.cli("status", "--json").stdout)
        assert status["healthy"] is True, status
    finally:
        holder.close()


def pin_map_size(state: LabState) -> int:
    total = 0
    for name in ("pin4", "pin6"):
        argv = runner.exec_argv(state, "lb", ["nft", "-j", "list", "map", "inet", "dfagent", name])
        out = json.loads(subprocess.run(argv, capture_output=True, text=True, check=True).stdout)
        total += sum(len(o["map"].get("elem", [])) for o in out["nftables"] if "map" in o)
    return total


def nexthops(agent: Agent) -> list[dict[str, Any]]:
    return list(json.loads(agent.cli("nexthops", "--json").stdout))


def wait_for(pred: Any, what: str, timeout: float = 30) -> None:
    wait_until(pred, timeout, 0.3, what)
