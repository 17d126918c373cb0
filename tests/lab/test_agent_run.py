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
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dfagent.bench.pcc import Holder
from dfagent.lab import runner
from dfagent.lab.retry import wait_until
from dfagent.lab.state import LabState
from tests.lab.lb_agent import VIP4, VIP6, LbAgent, lab_up, tmp, wait_for

pytestmark = pytest.mark.lab
__all__ = ["lab_up", "tmp"]  # the fixtures, used by name


@pytest.fixture(params=["kernel", "mirror"])
def agent(request: pytest.FixtureRequest, lab_up: LabState, tmp: Path) -> Iterator[LbAgent]:
    drain = {"actuator": "frr", "vtysh": runner.exec_argv(lab_up, "lb", ["vtysh"])}
    a = LbAgent(lab_up, tmp, request.param, drain=drain)
    try:
        yield a
    finally:
        a.close()


def pinned(agent: LbAgent, name: str) -> int | None:
    rows = json.loads(agent.cli("nexthops", "--json").stdout)
    counts = [n["pinned"] for n in rows if n["name"] == name]
    return None if None in counts else sum(counts)


def test_drain_wait_through_cli_grpc_agent_frr(agent: LbAgent, lab_up: LabState) -> None:
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


def nexthops(agent: LbAgent) -> list[dict[str, Any]]:
    return list(json.loads(agent.cli("nexthops", "--json").stdout))
