"""`dfagent run` with backend: eos, as an operator runs it: mirrored SYNs (GRE/ERSPAN II from
a raw socket on loopback) → the agent → DirectFlow pins on the eAPI test switch; `dfagent
status|flows|drain|undrain` over the control socket; SIGTERM leaves the pins; a restart
adopts them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pyeapi
import pytest
import yaml

from dfagent.lab.eapi import EapiSwitch
from dfagent.lab.mirror_sender import RawGreSender, mirrored_syn
from tests.eos.helpers import PASSWORD_ENV, VIP

pytestmark = pytest.mark.lab
MIRROR, COLLECTOR = "127.77.0.1", "127.77.0.2"  # loopback addresses of this test only
SERVERS = {"s1": "10.2.1.2", "s2": "10.2.2.2"}


def wait_for(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


@pytest.fixture
def cfg_file(eapi_switch: EapiSwitch, tmp_path: Path) -> str:
    node = pyeapi.client.connect(**eapi_switch.connect_args(), return_node=True)
    node.config(["router bgp 65000", "neighbor SERVERS peer group", "exit"])
    for i, addr in enumerate(SERVERS.values()):
        eapi_switch.state.static.add_bgp_path(f"{VIP}/32", addr, f"Ethernet{i + 1}", peer=addr,
                                              peer_group="SERVERS")  # fmt: skip
    cfg = {
        "vips": [{"prefix": f"{VIP}/32", "mode": "mirror"}],
        "mirror": {"sources": [MIRROR], "sessions": {1: "s1", 2: "s2"}},
        "nexthops": SERVERS,
        "backend": {"type": "eos", "eos": {
            "profile": "arista-7050x", "transport": "http",
            "endpoint": f"{eapi_switch.host}:{eapi_switch.port}", "username": "dfagent",
            "password_env": PASSWORD_ENV, "name": "sw1", "flow_prefix": "dfa_run",
            "reconcile_interval": 0.5,
        }},
        "drain": {"actuator": "eos", "bgp_asn": 65000, "neighbors": ["SERVERS"]},
        "api": {"socket": str(tmp_path / "dfagent.sock")},
        "metrics": {"address": None},
    }  # fmt: skip
    path = tmp_path / "dfagent.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


class Agent:
    """`dfagent run --config FILE` as a subprocess (the password in its environment)."""

    def __init__(self, cfg_file: str) -> None:
        self.cfg_file = cfg_file
        self.procs: list[subprocess.Popen[str]] = []

    def start(self) -> subprocess.Popen[str]:
        env = {**os.environ, PASSWORD_ENV: "eapi-test-pw"}
        argv = [sys.executable, "-m", "dfagent.cli.main", "run", "--config", self.cfg_file]
        p = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, text=True)
        self.procs.append(p)
        sock = yaml.safe_load(Path(self.cfg_file).read_text())["api"]["socket"]
        wait_for(lambda: os.path.exists(sock) or p.poll() is not None)
        assert p.poll() is None, p.stderr.read() if p.stderr else ""
        return p

    def stop(self, p: subprocess.Popen[str]) -> int:
        p.send_signal(signal.SIGTERM)
        return p.wait(10)

    def kill_all(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait(10)


@pytest.fixture
def agent(cfg_file: str) -> Iterator[Agent]:
    a = Agent(cfg_file)
    try:
        yield a
    finally:
        a.kill_all()


def cli(cfg_file: str, *args: str) -> tuple[int, str]:
    sock = yaml.safe_load(Path(cfg_file).read_text())["api"]["socket"]
    r = subprocess.run([sys.executable, "-m", "dfagent.cli.main", *args, "--socket", sock],
                       capture_output=True, text=True, timeout=30)  # fmt: skip
    return r.returncode, r.stdout + r.stderr


def test_mirrored_syns_become_pins_and_drain_works_through_the_cli(
    eapi_switch: EapiSwitch, cfg_file: str, agent: Agent
) -> None:
    sw = eapi_switch
    first = agent.start()
    with RawGreSender(COLLECTOR, source=MIRROR) as tx:
        for i in range(20):
            session = 1 + i % 2
            tx.send(mirrored_syn("erspan2", MIRROR, COLLECTOR, f"198.51.100.{i + 1}", VIP,
                                 40000 + i, 443, session=session, outer=False))  # fmt: skip
    wait_for(lambda: sw.state.flows.used() == 20)
    hops = {str(e.config.nexthop) for e in sw.state.flows.entries()}
    assert hops == set(SERVERS.values())
    code, out = cli(cfg_file, "status", "--json")
    st = json.loads(out)
    assert code == 0 and st["mode"] == "eos-directflow" and st["pinned"] == 20 and st["healthy"]
    code, out = cli(cfg_file, "flows", "--nexthop", "s1", "--json")
    assert code == 0 and len(json.loads(out)["flows"]) == 10
    code, out = cli(cfg_file, "drain", "s1", "--json")
    assert code == 0 and json.loads(out)["state"] == "draining", out
    assert "ip prefix-list DRAIN4 seq 10 permit 10.2.1.2/32" in sw.state.running_config()
    code, out = cli(cfg_file, "undrain", "s1", "--json")
    assert code == 0 and json.loads(out)["state"] == "active"
    assert "DRAIN4" not in sw.state.running_config()
    code, _ = cli(cfg_file, "resync")
    assert code == 0
    assert agent.stop(first) == 0
    assert sw.state.flows.used() == 20  # pins stay when the agent stops
    again = agent.start()
    code, out = cli(cfg_file, "status", "--json")
    assert code == 0 and json.loads(out)["pinned"] == 20  # adopted
    assert agent.stop(again) == 0


def test_run_refuses_to_start_with_one_line_when_the_switch_cannot_be_used(
    eapi_switch: EapiSwitch, cfg_file: str
) -> None:
    argv = [sys.executable, "-m", "dfagent.cli.main", "run", "--config", cfg_file]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                       env={k: v for k, v in os.environ.items() if k != PASSWORD_ENV})  # fmt: skip
    assert r.returncode == 1 and r.stderr.strip().count("\n") == 0
    assert "environment variable DFAGENT_TEST_EAPI_PASSWORD is not set" in r.stderr
    eapi_switch.stop()
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                       env={**os.environ, PASSWORD_ENV: "eapi-test-pw"})  # fmt: skip
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.startswith("error: switch sw1: cannot reach http://127.0.0.1:")
    sock = yaml.safe_load(Path(cfg_file).read_text())["api"]["socket"]
    assert not os.path.exists(sock)  # nothing started
