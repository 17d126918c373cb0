"""`dfagent lab eapi-switch`: the test switch run by hand, as a process."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pyeapi

from dfagent.lab.eapi import EapiSwitch

CLI = [sys.executable, "-m", "dfagent.cli.main", "lab", "eapi-switch"]


def test_runs_until_sigterm(tmp_path: object) -> None:
    sock = os.path.join(str(tmp_path), "eapi.sock")
    env = {**os.environ, "DFAGENT_EAPI_SWITCH_PASSWORD": "from-env"}
    proc = subprocess.Popen(
        [*CLI, "--user", "ops", "--directflow-enabled", "--capacity", "2", "--unix-socket", sock],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        m = re.match(
            r"eAPI test switch dfagent-sw1: http://127\.0\.0\.1:(\d+)/command-api \(user ops\)",
            line,
        )
        assert m, line
        node = pyeapi.client.connect(
            transport="http", host="127.0.0.1", port=int(m.group(1)), username="ops",
            password="from-env", return_node=True,
        )  # fmt: skip
        node.config(["directflow", "flow A", "match ethertype ip", "flow B", "flow C"])
        status = node.enable("show directflow detail")[0]["result"]["details"]["status"]
        assert list(status.values()).count("Flow programmed") == 2  # --capacity 2, enabled
        assert os.path.exists(sock)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert out.strip() == "stopped"
    assert not os.path.exists(sock)


def test_port_in_use_is_one_line_error() -> None:
    with EapiSwitch(password="x") as busy:
        res = subprocess.run(
            [*CLI, "--port", str(busy.port), "--password", "x"], capture_output=True, text=True
        )
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        f"error: cannot listen on 127.0.0.1 port {busy.port}: Address already in use"
    ]
    assert res.stdout == ""


def test_password_is_required() -> None:
    env = {k: v for k, v in os.environ.items() if k != "DFAGENT_EAPI_SWITCH_PASSWORD"}
    res = subprocess.run(CLI, capture_output=True, text=True, env=env)
    assert res.returncode == 2
    assert "Missing option '--password'" in res.stderr
    assert "Traceback" not in res.stderr


def test_startup_config_becomes_the_running_config(tmp_path: Path) -> None:
    cfg = tmp_path / "sw.cfg"
    cfg.write_text(
        "hostname sw9\ninterface Ethernet1\n   ip address 10.0.0.1/24\n!\n"
        "monitor session m1 source Ethernet1 tx\n"
        "monitor session m1 destination tunnel mode gre source 10.0.0.1 destination 1.1.1.1\n"
        "directflow\n   no shutdown\nrouter bgp 65000\n   bgp listen range 10.0.0.0/8\nend\n"
    )
    proc = subprocess.Popen([*CLI, "--password", "p", "--startup-config", str(cfg)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert proc.stdout is not None
        m = re.search(r":(\d+)/command-api", proc.stdout.readline())
        assert m
        node = pyeapi.client.connect(transport="http", host="127.0.0.1", port=int(m.group(1)),
                                     username="admin", password="p", return_node=True)  # fmt: skip
        text = node.enable("show running-config", encoding="text")[0]["result"]["output"]
        assert "hostname sw9" in text and "monitor session m1 source Ethernet1 tx" in text
        assert "directflow\n   no shutdown" in text and "router bgp" not in text
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


def test_a_startup_config_the_switch_refuses_is_one_line_error(tmp_path: Path) -> None:
    cfg = tmp_path / "sw.cfg"
    cfg.write_text("hostname sw9\nmonitor session m1 source Ethernet1 sideways\n")
    res = subprocess.run([*CLI, "--password", "p", "--startup-config", str(cfg)],
                         capture_output=True, text=True, timeout=30)  # fmt: skip
    assert res.returncode == 2
    assert res.stderr.startswith(f"error: {cfg}: 'monitor session m1 source Ethernet1 sideways'")
    assert res.stderr.count("\n") == 1 and "Invalid input" in res.stderr, res.stderr
    cfg.write_text("username x secret sha512 $6$abc\n")
    res = subprocess.run([*CLI, "--password", "p", "--startup-config", str(cfg)],
                         capture_output=True, text=True, timeout=30)  # fmt: skip
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "plain text" in res.stderr
