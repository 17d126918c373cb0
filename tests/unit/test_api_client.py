"""Connection errors: agent absent, stale socket, no permission; each one line, its exit code."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from dfagent.api.client import AgentNotRunning, AgentPermissionDenied, Client
from dfagent.api.server import serve
from dfagent.cli.main import cli
from tests.unit.api_fake import FakeAgent

COMMANDS = [
    ["status"], ["nexthops"], ["flows"], ["flows", "purge", "--yes"], ["drain", "s1"],
    ["drain", "s1", "--wait"], ["undrain", "s1"], ["events"], ["resync"],
]  # fmt: skip


def not_running(path: str) -> str:
    return (
        "error: agent not running: start it with `dfagent run --config …` "
        f"or check --socket {path}\n"
    )


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
@pytest.mark.parametrize("as_json", [False, True])
def test_agent_absent(tmp_path: Path, args: list[str], as_json: bool) -> None:
    path = str(tmp_path / "none.sock")
    res = CliRunner().invoke(cli, [*args, "--socket", path, *(["--json"] * as_json)])
    assert (res.exit_code, res.stderr, res.stdout) == (69, not_running(path), "")


def test_stale_socket_is_not_running(tmp_path: Path) -> None:
    path = str(tmp_path / "stale.sock")
    s = socket.socket(socket.AF_UNIX)
    s.bind(path)
    s.close()
    with pytest.raises(AgentNotRunning):
        Client(path)


def test_agent_gone_after_connect(agent: FakeAgent, sock: str) -> None:
    srv = serve(agent, sock)
    client = Client(sock, timeout=2)
    assert client.status().pid == 4242
    srv.stop(grace=0)
    with pytest.raises(AgentNotRunning):
        client.status()
    client.close()


@pytest.fixture
def shared_dir() -> Iterator[str]:
    # pytest's tmp_path sits under a 0700 directory; `nobody` must reach the socket itself
    # so that only the socket's own 0600 mode is what refuses it.
    d = tempfile.mkdtemp(prefix="dfagent-api-")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_socket_without_permission(agent: FakeAgent, shared_dir: str, sock: str) -> None:
    """As root (CI): the client runs as `nobody` against the 0600 socket. Not root: a
    socket with mode 000 (root would pass any file mode)."""
    if os.geteuid() != 0:
        srv = serve(agent, sock)
        os.chmod(sock, 0)
        try:
            with pytest.raises(AgentPermissionDenied):
                Client(sock)
        finally:
            srv.stop(grace=0)
        return
    path = os.path.join(shared_dir, "run", "dfagent.sock")
    srv = serve(agent, path)
    try:
        proc = subprocess.run(
            ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
             sys.executable, "-m", "dfagent.cli.main", "status", "--socket", path],
            capture_output=True, text=True, timeout=60, cwd=shared_dir,
            env={"PATH": os.environ["PATH"], "PYTHONPATH": str(Path(__file__).parents[2])},
        )  # fmt: skip
    finally:
        srv.stop(grace=0)
    assert proc.returncode == 77, proc.stderr
    assert proc.stderr == f"error: permission denied on {path}: run as root (the socket is 0600)\n"
    assert proc.stdout == ""
