"""Routing daemons and lab services inside namespaces: FRR (zebra, bgpd, staticd, …),
BIRD 2, and small long-running helpers (a TCP name server, say).

Every FRR daemon of a node gets its own config, pid, zserv and vty paths in the node's run
directory, so several FRR instances coexist on one machine; `vtysh --vty_socket DIR` talks to
them. Configs are dry-run first: FRR daemons *accept* a config with lines they reject and
just log "No such command", so a typo would otherwise be silently ignored.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from dfagent.lab.errors import LabError
from dfagent.lab.netns import ns_argv

FRR_DIR = Path(os.environ.get("DFAGENT_FRR_DIR", "/usr/lib/frr"))
BIRD = "bird"
# "No such command", "Command incomplete", "Command returned Warning Config Failed", …
_REJECTED = re.compile(r"\] ([^\]\n]*?) on config line (\d+): (.*)")


def frr_binary(daemon: str) -> Path:
    path = FRR_DIR / daemon
    if not os.access(path, os.X_OK):
        raise LabError(f"FRR daemon {daemon} not found at {path}: install the 'frr' package")
    return path


def frr_dryrun(conf: Path, daemons: tuple[str, ...]) -> list[str]:
    """Lines of `conf` that no daemon of the node accepts, as 'line N: text (reason)'.

    Each daemon knows only its own commands (staticd rejects `interface`, zebra rejects
    `router bgp`), so a line is an error only when every daemon rejects it.
    """
    rejected: dict[int, list[str]] = defaultdict(list)
    texts: dict[int, str] = {}
    with tempfile.TemporaryDirectory(prefix="dfagent-dryrun-") as tmp:
        # The daemons drop to user frr before reading: give them a copy they can read.
        os.chmod(tmp, 0o755)
        copy = Path(tmp) / "frr.conf"
        shutil.copyfile(conf, copy)
        copy.chmod(0o644)
        outputs = [
            subprocess.run(
                [str(frr_binary(d)), "-C", "-f", str(copy)],
                capture_output=True,
                text=True,
                timeout=30,
            )
            for d in daemons
        ]
    for proc in outputs:
        if proc.returncode != 0:
            return [f"dry run failed: {(proc.stderr or proc.stdout).strip()[-300:]}"]
        for m in _REJECTED.finditer(proc.stdout + proc.stderr):
            line = int(m.group(2))
            rejected[line].append(m.group(1))
            texts[line] = m.group(3).strip()
    return [
        f"line {n}: {texts[n]} ({reasons[0].lower()})"
        for n, reasons in sorted(rejected.items())
        if len(reasons) == len(daemons)
    ]


def _chown_frr(path: Path) -> None:
    try:
        os.chown(path, pwd.getpwnam("frr").pw_uid, grp.getgrnam("frr").gr_gid)
    except KeyError as exc:
        raise LabError("user 'frr' missing: install the 'frr' package") from exc


def frr_prepare(node_dir: Path, conf: Path) -> Path:
    """A directory the daemons (which drop to user frr) can traverse, with the config in it."""
    frr_dir = node_dir / "frr"
    frr_dir.mkdir(parents=True, exist_ok=True)
    for p in (node_dir.parent.parent, node_dir.parent, node_dir, frr_dir):
        p.chmod(0o755)  # mkdir honours the umask; user frr must traverse every level
    _chown_frr(frr_dir)
    target = frr_dir / "frr.conf"
    shutil.copyfile(conf, target)
    target.chmod(0o644)
    _chown_frr(target)
    return frr_dir


def frr_argv(daemon: str, frr_dir: Path) -> list[str]:
    return [
        str(frr_binary(daemon)),
        "-d",
        "-f", str(frr_dir / "frr.conf"),
        "-i", str(frr_dir / f"{daemon}.pid"),
        "-z", str(frr_dir / "zserv.api"),
        "--vty_socket", str(frr_dir),
        "-P", "0",
        "--log", f"file:{frr_dir / f'{daemon}.log'}",
    ]  # fmt: skip


def start_daemonizing(ns: str, argv: list[str], pidfile: Path, ready: Path | None) -> int:
    """Start a daemon that forks itself; return its pid once `ready` (a socket) exists."""
    pidfile.unlink(missing_ok=True)
    proc = subprocess.run(ns_argv(ns, argv), capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        raise LabError(f"{argv[0]} failed to start in {ns}: {proc.stderr.strip()}")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if pidfile.exists() and (ready is None or ready.exists()):
            text = pidfile.read_text().strip()
            if text.isdigit():
                return int(text)
        time.sleep(0.02)
    raise LabError(f"{argv[0]} did not come up in {ns} within 10 s (see its log)")


def bird_argv(conf: Path, sock: Path, pidfile: Path) -> list[str]:
    return [BIRD, "-c", str(conf), "-s", str(sock), "-P", str(pidfile)]


def bird_dryrun(conf: Path) -> list[str]:
    if shutil.which(BIRD) is None:
        raise LabError("bird not found: install the 'bird2' package")
    proc = subprocess.run([BIRD, "-p", "-c", str(conf)], capture_output=True, text=True)
    return [] if proc.returncode == 0 else [(proc.stderr or proc.stdout).strip()]


def python_argv(cmd: list[str]) -> list[str]:
    """Service commands may start with `python`: that means this interpreter (the venv's)."""
    if cmd and cmd[0] in ("python", "python3"):
        return [sys.executable, *cmd[1:]]
    return cmd


def start_service(ns: str, argv: list[str], log: Path, env: dict[str, str]) -> int:
    """Start a long-running foreground process in `ns`, detached from the runner."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            ns_argv(ns, argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **env},
        )
    time.sleep(0.05)
    if proc.poll() is not None:
        raise LabError(f"service {' '.join(argv)} exited at once in {ns}: see {log}")
    return proc.pid
