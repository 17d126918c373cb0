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
import os
import signal
import subprocess
import sys
import tempfile
import urllib.parse
from collections.abc import Callable, Iterator
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
PROMETHEUS = "/usr/bin/prometheus"


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


def in_lb(state: LabState, argv: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        runner.exec_argv(state, "lb", argv), capture_output=True, text=True, check=False, **kw
    )


def free_port(state: LabState) -> int:
    """A loopback port nobody listens on in lb's namespace (the kernel picks it)."""
    code = "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"
    return int(in_lb(state, [sys.executable, "-c", code]).stdout)


def http_get(state: LabState, url: str) -> tuple[int, str]:
    """GET from inside lb's namespace (where both servers listen)."""
    code = (
        "import sys, urllib.request, urllib.error\n"
        "try:\n"
        "    r = urllib.request.urlopen(sys.argv[1], timeout=5)\n"
        "    print(r.status); print(r.read().decode())\n"
        "except urllib.error.HTTPError as e:\n"
        "    print(e.code); print(e.read().decode())\n"
        "except OSError as e:\n"
        "    print(0); print(e)\n"
    )
    out = in_lb(state, [sys.executable, "-c", code, url], timeout=30).stdout
    status, _, body = out.partition("\n")
    return int(status or 0), body


class Agent:
    def __init__(self, state: LabState, tmp: Path, mode: str) -> None:
        self.state, self.tmp, self.mode = state, tmp, mode
        self.sock = str(tmp / "dfagent.sock")
        self.port = free_port(state)
        self.cfg: dict[str, Any] = {
            "vips": [{"prefix": f"{VIP4}/32", "mode": mode},
                     {"prefix": f"{VIP6}/128", "mode": mode}],
            "linux": {"state_dir": str(tmp / "state"), "reconcile_interval": 1},
            "nexthops": SERVERS,
            "drain": {"actuator": "none"},
            "api": {"socket": self.sock},
            "metrics": {"address": f"127.0.0.1:{self.port}"},
        }  # fmt: skip
        if mode == "mirror":  # one ERSPAN session per ECMP member interface (eth2..eth5)
            self.cfg["mirror"] = {
                "sources": ["127.0.0.1"],
                "sessions": {n: f"%eth{n + 1}" for n in (1, 2, 3, 4)},
            }
        self.config = tmp / "dfagent.yaml"
        self.write(self.cfg)
        self.proc: subprocess.Popen[bytes] | None = None
        self.shim: subprocess.Popen[bytes] | None = None

    def write(self, cfg: Any) -> None:
        self.config.write_text(yaml.safe_dump(cfg) if not isinstance(cfg, str) else cfg)

    def start(self) -> None:
        if self.mode == "mirror":
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
            p = self.cli("nexthops", "--json")
            return p.returncode == 0 and (
                sum(n["state"] == "active" for n in json.loads(p.stdout)) == 6
            )

        wait_until(ready, 30, 0.2, "the agent's six next hops active")

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "dfagent.cli.main", *args, "--socket", self.sock],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    def log(self) -> str:
        return (self.tmp / "agent.log").read_text(errors="replace")

    def stop(self) -> None:
        for p in (self.proc, self.shim):
            if p is not None and p.poll() is None:
                p.terminate()
                p.wait(15)
        self.proc = self.shim = None


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


def wait_for(
    pred: Callable[[], Any],
    what: str,
    timeout: float = 40,
    check: Callable[[], str | None] = lambda: None,
    show: Callable[[], Any] = lambda: "",
) -> None:
    """Until ``pred()``; ``check()`` returns why waiting is pointless (a process died),
    ``show()`` what there is instead (for the message)."""

    def holds() -> Any:
        err = check()
        assert err is None, f"{what}: {err}"  # no point waiting
        return True if pred() else show()  # what there is instead: the timeout's "last"

    wait_until(holds, timeout, 0.3, what, until=lambda v: v is True)


@pytest.fixture
def tmp() -> Iterator[Path]:
    # readable by the namespaced processes (pytest's tmp_path is 0700 under /tmp/pytest-of-root)
    d = Path(tempfile.mkdtemp(prefix="dfagent-metrics-"))
    os.chmod(d, 0o755)
    try:
        yield d
    finally:
        subprocess.run(["rm", "-rf", str(d)], check=False)


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
        agent.stop()
        in_lb(lab_up, [sys.executable, "-m", "dfagent.cli.main", "linux", "cleanup",
                       "--state-dir", str(tmp / "state")])  # fmt: skip
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
