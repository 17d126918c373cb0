"""The state file: stable mark allocations and the next hops being kept, plus a status snapshot.

``<state_dir>/linux-datapath.json``, written atomically (temp file + rename).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

DEFAULT_STATE_DIR = "/var/lib/dfagent"
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
    p = state_path(state_dir)
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        return {}  # unreadable: the kernel's maps and tables are adopted instead
    return data if isinstance(data, dict) else {}


def save(state_dir: str | os.PathLike[str], data: dict[str, Any]) -> None:
    d = Path(state_dir)
    d.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".state-", dir=d)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
        os.replace(tmp, state_path(d))
    except BaseException:
        with_suppress_unlink(tmp)
        raise


def with_suppress_unlink(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def remove(state_dir: str | os.PathLike[str]) -> bool:
    try:
        state_path(state_dir).unlink()
    except FileNotFoundError:
        return False
    return True
