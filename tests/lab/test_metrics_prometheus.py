"""The metrics endpoint of `dfagent run`, scraped by a real Prometheus server.

`dfagent run` on lb of the resilient-ecmp lab with `metrics.address` on lb's loopback, and the
Debian `prometheus` binary beside it in lb's namespace (its own config, its own TSDB in
tmp_path, a 1-s scrape interval, a free loopback port). Everything asserted is read back
through Prometheus' HTTP query API, so the names, labels and types are what an operator's
Prometheus stores:

- kernel mode: pinned flows per next hop follow the connections the client opens and
  closes; a SIGHUP with a bad file drops `dfagent_config_last_reload_successful` to 0 while
  the agent keeps running, a good file brings it back to 1 with a newer timestamp;
- mirror mode (a mirror shim on lb stands in for the switch's egress sessions): mirrored SYNs,
  pins and the SYN → pin histogram move with the connections opened, and the pinned flows per
  next hop match where the connections went.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from dfagent.bench.pcc import Holder
from dfagent.lab import runner
from dfagent.lab.state import LabState
from tests.lab.lb_agent import (
    SERVERS,
    VIP4,
    VIP6,
    LbAgent,
    free_port,
    http_get,
    in_lb,
    lab_up,
    tmp,
    wait_for,
)

pytestmark = pytest.mark.lab
__all__ = ["lab_up", "tmp"]  # the fixtures, used by name
PROMETHEUS = "/usr/bin/prometheus"


class Agent(LbAgent):
    """The agent with its metrics endpoint on a free port of lb's loopback."""

    def __init__(self, state: LabState, tmp: Path, mode: str) -> None:
        self.port = free_port(state)
        super().__init__(state, tmp, mode, metrics={"address": f"127.0.0.1:{self.port}"})


class Prometheus:
    """The Debian prometheus binary in lb's namespace, scraping the agent every second."""

    def __init__(self, state: LabState, tmp: Path, target: str) -> None:
        self.state = state
        self.port = free_port(state)
        self.url = f"http://127.0.0.1:{self.port}"
        conf = tmp / "prometheus.yml"
        conf.write_text(
            yaml.safe_dump(
                {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "scrape_configs": [
                        {"job_name": "dfagent", "static_configs": [{"targets": [target]}]}
                    ],
                }
            )
        )
        self.log_path = tmp / "prometheus.log"
        argv = [
            PROMETHEUS,
            f"--config.file={conf}",
            f"--storage.tsdb.path={tmp / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
        ]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                runner.exec_argv(state, "lb", argv), stdout=log, stderr=subprocess.STDOUT
            )
        wait_for(
            lambda: http_get(state, f"{self.url}/-/ready")[0] == 200,
            "prometheus ready",
            check=lambda: None if self.proc.poll() is None else self.log(),
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def query(self, promql: str) -> list[dict[str, Any]]:
        url = f"{self.url}/api/v1/query?query={urllib.parse.quote(promql)}"
        status, body = http_get(self.state, url)
        assert status == 200, (promql, status, body)
        data = json.loads(body)
        assert data["status"] == "success", data
        return list(data["data"]["result"])

    def by(self, promql: str, label: str) -> dict[str, float]:
        return {r["metric"].get(label, ""): float(r["value"][1]) for r in self.query(promql)}

    def scalar(self, promql: str) -> float | None:
        rows = self.query(promql)
        return float(rows[0]["value"][1]) if rows else None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(15)


@pytest.fixture(params=["kernel", "mirror"])
def running(
    request: pytest.FixtureRequest, lab_up: LabState, tmp: Path
) -> Iterator[tuple[Agent, Prometheus]]:
    agent = Agent(lab_up, tmp, request.param)
    prom: Prometheus | None = None
    try:
        agent.start()
        prom = Prometheus(lab_up, tmp, f"127.0.0.1:{agent.port}")
        wait_for(lambda: prom.scalar('up{job="dfagent"}') == 1, "the agent scraped", 30)
        yield agent, prom
    finally:
        if prom is not None:
            prom.stop()
        agent.close()
    assert in_lb(lab_up, ["pgrep", "-f", str(tmp)]).stdout == ""  # nothing of ours left


def pinned_by_nexthop(prom: Prometheus) -> dict[str, float]:
    return prom.by("sum by (nexthop) (dfagent_pinned_flows)", "nexthop")


def test_prometheus_reads_pins_per_nexthop_and_mirror_counters(
    running: tuple[Agent, Prometheus], lab_up: LabState
) -> None:
    agent, prom = running
    # s1..s3 are in lb's ECMP set (s4 joins only when a test adds it); the first count runs
    # in the background after the first pass, so the first scrape may come before it
    idle = {"s1": 0, "s2": 0, "s3": 0}
    wait_for(lambda: pinned_by_nexthop(prom) == idle, "0 pinned on s1..s3", 20,
             show=lambda: pinned_by_nexthop(prom))  # fmt: skip
    states = prom.by('dfagent_nexthop_state{state="active"} == 1', "address")
    assert len(states) == 6, states  # v4 and v6 (link-local) of s1..s3
    info = prom.query("dfagent_info")
    assert info[0]["metric"]["mode"] == ("map" if agent.mode == "mirror" else "kernel")
    syns0 = prom.scalar('sum(dfagent_mirror_packets_total{outcome="syn"})') or 0.0
    holder = Holder(lab_up)
    try:
        opened = holder.ask("open", addrs=[VIP4, VIP6], port=80, count=60)
        assert opened["opened"] == 60, opened
        want = {s: float(opened["by_server"].get(s, 0)) for s in ("s1", "s2", "s3")}
        assert all(want.values()), opened
        if agent.mode == "mirror":
            wait_for(
                lambda: (
                    (prom.scalar('sum(dfagent_mirror_packets_total{outcome="syn"})') or 0)
                    >= syns0 + 60
                ),
                "60 mirrored SYNs in Prometheus",
                show=lambda: prom.by("dfagent_mirror_packets_total", "outcome"),
            )
            wait_for(
                lambda: sum(prom.by("dfagent_pins_total", "result").values()) >= 60,
                "60 pins in Prometheus",
                show=lambda: prom.by("dfagent_pins_total", "result"),
            )
            pins = prom.by("dfagent_pins_total", "result")
            assert pins["pinned"] + pins["replaced"] >= 60 and pins["failed"] == 0, pins
            n = prom.scalar("dfagent_syn_to_pin_seconds_count") or 0
            assert n >= 60
            p99 = prom.scalar("histogram_quantile(0.99, dfagent_syn_to_pin_seconds_bucket)")
            assert p99 is not None and 0 < p99 < 1.0, p99
            dropped = prom.by('dfagent_mirror_packets_total{outcome="dropped"}', "reason")
            assert sum(dropped.values()) == 0, dropped
            buckets = prom.by("dfagent_syn_to_pin_seconds_bucket", "le")
            print(
                f"mirror: {prom.scalar('dfagent_mirror_received_packets_total')} mirror packets, "
                f"{n} SYN→pin observations, p99 {p99 * 1000:.1f} ms, pins {pins}, "
                f"buckets {buckets}"
            )
            # a pin reaches conntrack with the connection's next packet (a connection that
            # sent its last ACK before its pin was written waits for one): send one each
            assert holder.ask("check")["broken"] == 0
        # the agent counts conntrack every second, Prometheus scrapes every second
        wait_for(
            lambda: pinned_by_nexthop(prom) == want,
            f"pinned flows {want} in Prometheus",
            show=lambda: pinned_by_nexthop(prom),
        )
        print(f"{agent.mode}: Prometheus pinned flows per next hop {pinned_by_nexthop(prom)}")
        # s1's connections end: its pinned count falls to 0, the others keep theirs
        holder.ask("close", server="s1")
        want["s1"] = 0.0
        wait_for(
            lambda: pinned_by_nexthop(prom) == want,
            f"s1 at 0 in Prometheus {want}",
            show=lambda: pinned_by_nexthop(prom),
        )
        assert holder.ask("check")["broken"] == 0
    finally:
        holder.close()
    if agent.mode == "kernel":
        reload_through_prometheus(agent, prom)
        a_taken_port_fails_the_start(agent)


def reload_through_prometheus(agent: Agent, prom: Prometheus) -> None:
    """SIGHUP with a bad file: the agent keeps running on the last good config and says so
    in the metric; a good file brings it back with a newer success time."""
    assert agent.proc is not None
    ok = "dfagent_config_last_reload_successful"
    at = "dfagent_config_last_reload_success_timestamp_seconds"
    assert prom.scalar(ok) == 1
    started = prom.scalar(at) or 0.0
    agent.write("vips: [{prefix: 1.1.1.1/32, mode: kernel}]\nnexthops: {s1: nope}\n")
    agent.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: prom.scalar(ok) == 0, "reload failure in Prometheus")
    assert prom.scalar('dfagent_config_reloads_total{result="failure"}') == 1
    assert prom.scalar(at) == started
    assert agent.proc.poll() is None and agent.cli("status").returncode == 0
    assert "reload-rejected" in agent.log() and "nexthops.s1" in agent.log()
    cfg = dict(agent.cfg, nexthops={**SERVERS, "s5": "10.2.5.2"})
    agent.write(cfg)
    agent.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: prom.scalar(ok) == 1, "reload success in Prometheus")
    assert (prom.scalar(at) or 0) > started
    assert prom.scalar("dfagent_config_restart_needed") == 0


def a_taken_port_fails_the_start(agent: Agent) -> None:
    """A second agent given the first one's metrics address: one line, exit 1, before it
    has touched anything (no API socket, no state)."""
    second = {
        **agent.cfg,
        "linux": {"state_dir": str(agent.tmp / "state2")},
        "api": {"socket": str(agent.tmp / "second.sock")},
    }
    path = agent.tmp / "second.yaml"
    path.write_text(yaml.safe_dump(second))
    p = in_lb(agent.state, [sys.executable, "-m", "dfagent.cli.main", "run", "--config",
                            str(path)], timeout=60)  # fmt: skip
    assert p.returncode == 1, (p.stdout, p.stderr)
    want = f"error: metrics.address 127.0.0.1:{agent.port}: [Errno 98] Address already in use"
    assert p.stderr.strip() == want, p.stderr
    assert not (agent.tmp / "second.sock").exists()
    assert not list((agent.tmp / "state2").glob("*.json"))
    assert agent.cli("status").returncode == 0  # the first one is untouched
