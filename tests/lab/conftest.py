"""Fixtures shared by the lab tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.lab.router_lab import Lab


@pytest.fixture
def lab() -> Iterator[Lab]:
    """The linux-router lab of the kernel- and map-mode tests, always removed."""
    lab = Lab()
    try:
        lab.build()
        yield lab
    finally:
        lab.teardown()
