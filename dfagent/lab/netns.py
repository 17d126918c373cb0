"""Network namespaces, veth pairs and commands inside them, through iproute2.

iproute2 is what engineers use by hand, so every step here can be replayed from the log.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from typing import Any

from dfagent.lab.errors import LabError


def run(argv: Sequence[str], check: bool = True, timeout: float = 30, **kw: Any) -> str:
    try:
        proc = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            **kw,  # more subprocess.run arguments
        )
    except FileNotFoundError as exc:
        raise LabError(f"{argv[0]}: not installed ({exc.strerror})") from exc
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"timed out after {timeout}s: {' '.join(argv)}") from exc
    if check and proc.returncode != 0:
        raise LabError(f"failed ({proc.returncode}): {' '.join(argv)}\n{proc.stderr.strip()}")
    return str(proc.stdout)


def list_netns() -> list[str]:
    out = run(["ip", "netns", "list"], check=False)
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def add_netns(ns: str) -> None:
    run(["ip", "netns", "add", ns])
    run(["ip", "-n", ns, "link", "set", "lo", "up"])


def ns_argv(ns: str, argv: Sequence[str]) -> list[str]:
    return ["ip", "netns", "exec", ns, *argv]


def ns_exec(
    ns: str,
    command: str,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    timeout: float = 30,
) -> subprocess.CompletedProcess[str]:
    """Run a shell command inside a namespace (as a node's `exec` line would run)."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run(
        ns_argv(ns, ["sh", "-c", command]),
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise LabError(
            f"command failed in {ns} ({proc.returncode}): {command}\n"
            f"{(proc.stderr or proc.stdout).strip()}"
        )
    return proc


def add_veth(ns_a: str, if_a: str, ns_b: str, if_b: str) -> None:
    """A veth pair created straight inside both namespaces (no name ever in the root netns)."""
    run(["ip", "link", "add", if_a, "netns", ns_a, "type", "veth", "peer", if_b, "netns", ns_b])
    run(["ip", "-n", ns_a, "link", "set", if_a, "up"])
    run(["ip", "-n", ns_b, "link", "set", if_b, "up"])


def ns_pids(ns: str) -> list[int]:
    out = run(["ip", "netns", "pids", ns], check=False)
    return [int(p) for p in out.split() if p.isdigit()]


def kill_all_in(ns: str, grace: float = 3.0) -> None:
    """TERM every process in the namespace, then KILL what is left after `grace` seconds."""
    pids = ns_pids(ns)
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while pids and time.monotonic() < deadline:
        time.sleep(0.05)
        pids = [p for p in ns_pids(ns) if alive(p)]
    for pid in pids:
        _signal(pid, signal.SIGKILL)


def delete_netns(ns: str) -> None:
    kill_all_in(ns)
    run(["ip", "netns", "delete", ns], check=False)


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def alive(pid: int) -> bool:
    """True for a running process; a zombie waiting to be reaped counts as gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False
