"""The egress case on the egress-ecmp lab: a host with two BGP default gateways that NAT.

When a gateway stops announcing the default (its bgpd stops; the box still forwards and
still holds its NAT state), the host's flows through it move to the other gateway, which
NATs them to another address: the server sees a new client and resets them. Kernel mode on
the host, with the default route as its "VIP", keeps them on the gateway they started on.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dfagent.bench.pcc import Holder
from dfagent.lab import checks, runner, spec
from dfagent.lab.retry import wait_until

pytestmark = pytest.mark.lab
LAB = "egress-ecmp"
SERVER = "203.0.113.10"
R1_NAT, R2_NAT = "100.64.1.1", "100.64.2.1"


def _drain_r1(pin: bool) -> tuple[dict, dict]:
    the_lab = spec.load(LAB)
    runner.down(LAB)
    state = runner.up(the_lab, log=False)
    agent = None
    try:
        converged = spec.Lab(the_lab.topology, the_lab.services, the_lab.checks[:3])
        assert all(r.ok for r in checks.run_checks(state, converged))
        if pin:
            argv = [sys.executable, "-m", "dfagent.cli.main", "linux", "kernel"]
            argv += ["--vip", "0.0.0.0/0", "--state-dir", str(Path(state.run_dir) / "agent")]
            agent = subprocess.Popen(runner.exec_argv(state, "host", argv))
            _wait_rules(state, 2)
        holder = Holder(state, node="host")
        try:
            opened = holder.ask("open", addrs=[SERVER], port=8080, count=100)
            assert opened["opened"] == 100
            assert set(opened["by_server"]) == {R1_NAT, R2_NAT}, opened
            runner.stop_daemon(state, "r1", "bgpd")
            _wait_default_via(state, {"10.10.0.2"})
            return holder.ask("check"), holder.ask("fresh", count=20)
        finally:
            holder.close()
    finally:
        if agent is not None:
            agent.terminate()
            agent.wait(timeout=10)
        runner.down(LAB)


def _wait_on_host(state, argv: list[str], ok, what: str, timeout: float = 20) -> None:
    """Poll a command on the host until `ok(its output)` holds."""
    argv = runner.exec_argv(state, "host", argv)
    output = lambda: subprocess.run(argv, capture_output=True, text=True).stdout  # noqa: E731
    wait_until(output, timeout, 0.2, what, until=ok)


def _wait_rules(state, n: int) -> None:
    argv = ["ip", "rule", "show", "pref", "9000"]
    _wait_on_host(state, argv, lambda out: len(out.splitlines()) >= n, "per-gateway rules")


def _wait_default_via(state, want: set[str]) -> None:
    def gateways(out: str) -> set[str]:
        routes = json.loads(out or "[]")
        return {nh.get("gateway") for r in routes for nh in r.get("nexthops", [r])}

    argv = ["ip", "-j", "route", "show", "default"]
    _wait_on_host(state, argv, lambda out: gateways(out) == want, f"a default via {want}")


def test_without_pinning_a_withdrawn_gateway_breaks_its_nated_connections():
    check, fresh = _drain_r1(pin=False)
    assert check["broken"] > 0, check
    assert set(check["broken_from"]) == {R1_NAT}  # only flows through r1 broke
    assert set(fresh["answers"]) == {R2_NAT}


def test_kernel_mode_on_the_host_keeps_every_connection_on_its_gateway():
    check, fresh = _drain_r1(pin=True)
    assert check["broken"] == 0 and check["alive"] == 100, check
    assert set(check["by_server"]) == {R1_NAT, R2_NAT}  # still NATed by both gateways
    assert set(fresh["answers"]) == {R2_NAT}  # new connections avoid the withdrawn one
