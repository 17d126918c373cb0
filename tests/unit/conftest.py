"""Fixtures for the control API tests: a FakeAgent served by the real gRPC server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dfagent.api.server import Server, serve
from tests.unit.api_fake import FakeAgent


@pytest.fixture
def agent() -> FakeAgent:
    return FakeAgent()


@pytest.fixture
def sock(tmp_path: Path) -> str:
    # Unix socket paths are limited to 107 bytes; pytest's tmp_path stays well below.
    return str(tmp_path / "run" / "dfagent.sock")


@pytest.fixture
def server(agent: FakeAgent, sock: str) -> Iterator[Server]:
    srv = serve(agent, sock)
    yield srv
    agent.stop()
    srv.stop(grace=0)
