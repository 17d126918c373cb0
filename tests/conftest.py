"""Shared pytest fixtures and gating.

Lab tests (marker `lab`) need root, network namespaces and daemon binaries. Off CI they skip
with the reason; with DFAGENT_REQUIRE_LAB=1 (set by .ci/run) a missing prerequisite fails
the test instead, so CI can never pass by skipping.
"""

from __future__ import annotations

import os
import shutil

import pytest

LAB_BINARIES = ("ip", "nft", "conntrack", "/usr/lib/frr/zebra", "/usr/lib/frr/bgpd", "vtysh")


def lab_unavailable_reason(binaries: tuple[str, ...] = LAB_BINARIES) -> str | None:
    if os.geteuid() != 0:
        return "lab tests need root"
    for b in binaries:
        if (os.path.isabs(b) and not os.access(b, os.X_OK)) or (
            not os.path.isabs(b) and shutil.which(b) is None
        ):
            return f"lab tests need {b}"
    return None


def require_lab(binaries: tuple[str, ...] = LAB_BINARIES) -> None:
    """Skip (or, under DFAGENT_REQUIRE_LAB=1, fail) when lab prerequisites are missing."""
    reason = lab_unavailable_reason(binaries)
    if reason is None:
        return
    if os.environ.get("DFAGENT_REQUIRE_LAB") == "1":
        pytest.fail(f"{reason} (DFAGENT_REQUIRE_LAB=1: CI must not skip lab tests)")
    pytest.skip(reason)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("lab") is not None:
        require_lab()
