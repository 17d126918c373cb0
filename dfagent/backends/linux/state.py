"""The state file: stable mark allocations and the next hops being kept, plus a status snapshot.

``<state_dir>/linux-datapath.json``, written atomically (temp file + rename).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from dfagent.config import DEFAULT_STATE_DIR

log = logging.getLogger("dfagent.linux")
PID_FILE = "agent.pid"

STATE_FILE = "linux-datapath.json"


def netns_name() -> str | None:
    """The `ip netns` name of the namespace this process runs in (None if unnamed/root)."""
    try:
        mine = os.stat("/proc/self/ns/net")
        for entry in os.scandir("/run/netns"):
            try:
                st = os.stat(entry.path)
            except OSError:
                continue
            if (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino):
                return entry.name
    except OSError:
        return None
    return None


def default_state_dir() -> str:
    """/var/lib/dfagent, or /var/lib/dfagent/netns/<name> inside a named network namespace
    (several lab routers on one machine must not share a state file)."""
    name = netns_name()
    return DEFAULT_STATE_DIR if name is None else f"{DEFAULT_STATE_DIR}/netns/{name}"


def state_path(state_dir: str | os.PathLike[str]) -> Path:
    return Path(state_dir) / STATE_FILE


def load(state_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The state file, or {} when absent or unreadable (the kernel's maps and tables are
    adopted instead; the caller checks the types of what it reads)."""
    p = state_path(state_dir)
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("state-unreadable path=%s error=%r (adopting from the kernel)", p, exc)
        return {}
    if not isinstance(data, dict):
        log.warning("state-unreadable path=%s error='not a JSON object'", p)
        return {}
    return data


def write_atomic(path: str | os.PathLike[str], text: str) -> None:
    d = Path(path).parent
    d.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".dfagent-", dir=d)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with_suppress_unlink(tmp)
        raise


def save(state_dir: str | os.PathLike[str], data: dict[str, Any]) -> None:
    write_atomic(state_path(state_dir), json.dumps(data, indent=1, sort_keys=True))


def with_suppress_unlink(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def remove(state_dir: str | os.PathLike[str]) -> bool:
    try:
        state_path(state_dir).unlink()
    except FileNotFoundError:
        return False
    return True


class AgentRunning(RuntimeError):
    pass


class AgentLock:
    """``<state_dir>/agent.pid``, locked (flock) while an agent runs on this state dir.

    The lock, not the pid, says whether an agent runs: a crashed agent's stale file is
    simply taken over. ``status`` and ``cleanup`` read it with :func:`running_agent`.
    """

    def __init__(self, state_dir: str | os.PathLike[str]) -> None:
        self.path = Path(state_dir) / PID_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            other = running_agent(self.path.parent)
            pid = other["pid"] if other else "?"
            raise AgentRunning(
                f"another dfagent (pid {pid}) already runs with state dir {self.path.parent}"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "since": time.time()}).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            with_suppress_unlink(str(self.path))
            os.close(self._fd)
            self._fd = None


def running_agent(state_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """{"pid", "since"} of the agent holding the lock on this state dir, or None."""
    path = Path(state_dir) / PID_FILE
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                info = json.loads(os.read(fd, 4096) or b"{}")
            except ValueError:
                info = {}
            return {"pid": info.get("pid"), "since": info.get("since")}
        return None  # nobody holds it: a stale file from a crash
    finally:
        os.close(fd)
