"""`dfagent run` on lb of the resilient-ecmp lab, as the agent, metrics and ship tests drive
it: the lab fixture, the agent's config and process (with a mirror shim on lb in mirror mode:
one ERSPAN session per ECMP member interface, eth2..eth5), and its CLI over the socket."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from dfagent.lab import checks, mirror_shim, runner, spec
from dfagent.lab.retry import wait_until
from dfagent.lab.state import LabState, load_state

LAB = "resilient-ecmp"
VIP4, VIP6 = "1.1.1.1", "2001:db8::1"
SERVERS = {f"s{n}": [f"10.2.{n}.2", f"fd00:2:{n}::2"] for n in (1, 2, 3, 4)}
MEMBERS = {f"eth{n + 1}": n for n in (1, 2, 3, 4)}  # lb's interface to s<n> → session n


@contextlib.contextmanager
def converged(name: str) -> Iterator[LabState]:
    """Lab ``name`` up with every check passed, and always removed (nothing left behind)."""
    the_lab = spec.load(name)
    runner.down(name)
    state = runner.up(the_lab, log=False)
    try:
        results = checks.run_checks(state, the_lab)
        assert all(r.ok for r in results), [r for r in results if not r.ok]
        yield state
    finally:
        runner.down(name)
    assert load_state(name) is None


@pytest.fixture
def lab_up() -> Iterator[LabState]:
    """The resilient-ecmp lab, converged, and always removed."""
    with converged(LAB) as state:
        yield state


class LbAgent:
    """The agent's config (``cfg``, written to ``config``), its process and its CLI. ``tmp``
    must be readable by the namespaced processes (pytest's tmp_path is 0700)."""

    def __init__(self, state: LabState, tmp: Path, mode: str, **extra: Any) -> None:
        self.state, self.tmp, self.mode = state, tmp, mode
        self.sock = str(tmp / "dfagent.sock")
        self.cfg: dict[str, Any] = {
            "vips": [{"prefix": f"{VIP4}/32", "mode": mode},
                     {"prefix": f"{VIP6}/128", "mode": mode}],
            "linux": {"state_dir": str(tmp / "state"), "reconcile_interval": 1},
            "nexthops": SERVERS,
            "drain": {"actuator": "none"},
            "api": {"socket": self.sock},
            **extra,
        }  # fmt: skip
        if mode == "mirror":
            self.cfg["mirror"] = {
                "sources": ["127.0.0.1"],
                "sessions": {n: f"%{ifname}" for ifname, n in MEMBERS.items()},
            }
        self.config = tmp / "dfagent.yaml"
        self.write(self.cfg)
        self.proc: subprocess.Popen[bytes] | None = None
        self.shim: subprocess.Popen[bytes] | None = None

    def write(self, cfg: Any) -> None:
        self.config.write_text(yaml.safe_dump(cfg) if not isinstance(cfg, str) else cfg)

    def start(self) -> None:
        """The shim (once, in mirror mode), then the agent; returns when its six next hops
        are active."""
        if self.mode == "mirror" and self.shim is None:
            state = self.state
            self.shim = mirror_shim.spawn(
                lambda argv: runner.exec_argv(state, "lb", argv), MEMBERS, self.tmp / "shim.log"
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

    def close(self) -> None:
        """Stop both, remove what the agent installed on lb."""
        self.stop()
        self.stop_shim()
        cleanup = [sys.executable, "-m", "dfagent.cli.main", "linux", "cleanup",
                   "--state-dir", str(self.tmp / "state")]  # fmt: skip
        subprocess.run(runner.exec_argv(self.state, "lb", cleanup), capture_output=True,
                       check=False)  # fmt: skip


@pytest.fixture
def tmp() -> Iterator[Path]:
    """A temporary folder the namespaced processes can read (pytest's tmp_path is 0700)."""
    d = Path(tempfile.mkdtemp(prefix="dfagent-lb-"))
    os.chmod(d, 0o755)
    try:
        yield d
    finally:
        subprocess.run(["rm", "-rf", str(d)], check=False)


def in_lb(state: LabState, argv: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        runner.exec_argv(state, "lb", argv), capture_output=True, text=True, check=False, **kw
    )


def free_port(state: LabState) -> int:
    """A loopback port nobody listens on in lb's namespace (the kernel picks it)."""
    code = "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"
    return int(in_lb(state, [sys.executable, "-c", code]).stdout)


def http_get(state: LabState, url: str) -> tuple[int, str]:
    """GET from inside lb's namespace (where the agent's endpoints listen)."""
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
