"""The namespace runner's `arista_ceos` node: Linux addresses and forwarding from its
startup-config, FRR for its routing (started like any node's), and the eAPI test switch with
its Linux datapath, started in the node's namespace as one of the lab's processes.

The switch is recorded in the lab's state before it starts, so `dfagent lab down` stops it
(after a crashed runner too: the namespace goes, the recorded pid is killed). How to reach
it is written to ``<run dir>/<node>/eapi.json`` (:func:`connection`): ``url`` (from inside
the node), ``transport``, ``port``, ``username``, ``password``, the node's ``addresses`` (to
reach it from a neighbour), ``netns``, and ``cert`` with https.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from dfagent.lab import ceos, netns
from dfagent.lab.daemons import start_service
from dfagent.lab.errors import LabError
from dfagent.lab.state import LabState, Process
from dfagent.lab.topology import Node

CONNECTION_FILE = "eapi.json"
PROCESS = "eapi-switch"
READY = "eAPI test switch"
PASSWORD_ENV = "DFAGENT_EAPI_SWITCH_PASSWORD"


def check(node: Node) -> ceos.CeosConfig:
    """The node's startup-config, parsed, with what the runner needs present (raises
    CeosConfigError, one line)."""
    assert node.startup_config is not None
    cfg = ceos.load(node.startup_config)
    where = str(node.startup_config)
    if not cfg.eapi.enabled or not cfg.eapi.protocol:
        raise ceos.CeosConfigError(
            f"{where}: eAPI is off: want management api http-commands / protocol http|https "
            "/ no shutdown"
        )
    if not cfg.users:
        raise ceos.CeosConfigError(f"{where}: no `username NAME … secret 0 PASSWORD` for eAPI")
    # the switch's own parser, before anything is made: a refused line fails the preflight
    from dfagent.lab.eapi.switch import EapiSwitch
    from dfagent.lab.eapi.tokens import CommandError

    try:
        EapiSwitch(password="preflight").configure(cfg.switch_lines)
    except CommandError as exc:
        raise ceos.CeosConfigError(f"{where}: {exc.error}") from None
    return cfg


def configure_linux(ns: str, node: Node) -> None:
    """Interface addresses and forwarding, as the startup-config says."""
    cfg = check(node)
    for dev, addrs in cfg.addresses.items():
        for addr in addrs:
            netns.run(["ip", "-n", ns, "addr", "add", addr, "dev", dev])
    sysctls = ["net.ipv4.ip_forward=1"] if cfg.ipv4_routing else []
    sysctls += ["net.ipv6.conf.all.forwarding=1"] if cfg.ipv6_routing else []
    if sysctls:
        netns.run(["ip", "netns", "exec", ns, "sysctl", "-qw", *sysctls])


def start(state: LabState, node: Node, node_dir: Path, frr_dir: Path) -> dict[str, Any]:
    """Start the node's eAPI test switch; return (and write) how to reach it."""
    assert node.startup_config is not None
    cfg = check(node)
    node_dir.mkdir(parents=True, exist_ok=True)
    user, password = next(iter(cfg.users.items()))
    argv = [sys.executable, "-m", "dfagent.cli.main", "lab", "eapi-switch",
            "--host", "0.0.0.0", "--port", str(cfg.eapi.port), "--user", user,
            "--hostname", cfg.hostname or node.name, "--datapath", "linux",
            "--vtysh", f"vtysh --vty_socket {frr_dir}",
            "--startup-config", str(node.startup_config)]  # fmt: skip
    conn: dict[str, Any] = {
        "node": node.name,
        "netns": state.namespaces[node.name],
        "transport": cfg.eapi.protocol,
        "port": cfg.eapi.port,
        "username": user,
        "password": password,
        "url": f"{cfg.eapi.protocol}://127.0.0.1:{cfg.eapi.port}/command-api",
        "addresses": [a.split("/")[0] for addrs in cfg.addresses.values() for a in addrs],
    }
    if cfg.eapi.protocol == "https":
        from dfagent.lab.eapi.switch import make_self_signed_cert

        cert, key = make_self_signed_cert(node_dir, cfg.hostname or node.name)
        argv += ["--tls", cert, key]
        conn["cert"] = cert
    proc = Process(node.name, PROCESS, argv)
    state.processes.append(proc)
    state.save()  # recorded before it exists: `down` finds it whatever happens next
    log = node_dir / f"{PROCESS}.log"
    proc.pid = start_service(state.namespaces[node.name], argv, log, {PASSWORD_ENV: password})
    state.save()
    deadline = time.monotonic() + 30
    while READY not in log.read_text(errors="replace"):
        if not netns.alive(proc.pid) or time.monotonic() > deadline:
            tail = log.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
            raise LabError(f"{node.name}: the eAPI test switch did not start: {tail[0]}")
        time.sleep(0.05)
    path = node_dir / CONNECTION_FILE
    path.write_text(json.dumps(conn, indent=1))
    path.chmod(0o600)
    return conn


def connection(state: LabState, node: str) -> dict[str, Any]:
    """How to reach a lab node's eAPI test switch (LabError if it runs none)."""
    path = Path(state.run_dir) / node / CONNECTION_FILE
    try:
        return dict(json.loads(path.read_text()))
    except FileNotFoundError:
        raise LabError(f"lab {state.name}: {node} runs no eAPI test switch ({path})") from None


_RUN_CMDS = """
import json, sys, pyeapi
conn, cmds, fmt = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
node = pyeapi.client.connect(transport=conn["transport"], host="127.0.0.1", port=conn["port"],
                             username=conn["username"], password=conn["password"],
                             return_node=True)
print(json.dumps(node.run_commands(cmds, encoding=fmt)))
"""


def run_cmds(state: LabState, node: str, cmds: list[str], fmt: str = "json") -> list[Any]:
    """Run eAPI commands on a lab node's test switch with pyeapi, from inside the node (its
    eAPI listens there as on the switch); LabError with the switch's message if refused."""
    import subprocess

    conn = connection(state, node)
    argv = netns.ns_argv(conn["netns"], [sys.executable, "-c", _RUN_CMDS, json.dumps(conn),
                                         json.dumps(cmds), fmt])  # fmt: skip
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or ["no output"])[-1]
        raise LabError(f"{node}: eAPI {cmds}: {last}")
    return list(json.loads(r.stdout))
