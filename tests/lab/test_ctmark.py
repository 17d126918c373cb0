"""CtMarker on the real kernel: dfagent's bits written into existing conntrack entries of
both families, other bits kept, absent entries answered as such."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from dfagent.lab import netns

pytestmark = pytest.mark.lab
NS = "dfl-ctmark-test"
MASK = 0x0FFF0000


@pytest.fixture
def ns() -> Iterator[str]:
    netns.delete_netns(NS)
    netns.add_netns(NS)
    try:
        yield NS
    finally:
        netns.delete_netns(NS)


def _ct(ns: str, *args: str) -> str:
    argv = ["ip", "netns", "exec", ns, "conntrack", *args]
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


def _insert(ns: str, src: str, dst: str, mark: int) -> None:
    _ct(ns, "-I", "-p", "tcp", "-s", src, "-d", dst, "--sport", "40000", "--dport", "80",
        "--state", "ESTABLISHED", "-t", "120", "-m", str(mark))  # fmt: skip


def test_marks_existing_entries_and_reports_absent_ones(ns: str) -> None:
    _insert(ns, "10.0.0.1", "1.1.1.1", 0x1)  # another user's bit 0x1 must survive
    _insert(ns, "fd00::1", "2001:db8::1", 0x30000000)  # outside dfagent's field: kept
    flows = [
        ("10.0.0.1", "1.1.1.1", 40000, 80, 0x08010000),
        ("fd00::1", "2001:db8::1", 40000, 80, 0x08020000),
        ("10.0.0.9", "1.1.1.1", 40000, 80, 0x08010000),  # no such entry
    ]
    code = (
        "from dfagent.backends.linux.ctmark import CtMarker\n"
        f"r = CtMarker({MASK}).mark({flows!r})\n"
        "print(r.updated, r.absent, r.failed)"
    )
    argv = ["ip", "netns", "exec", ns, sys.executable, "-c", code]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout.split()
    assert out == ["2", "1", "0"], out
    assert f"mark={0x08010001}" in _ct(ns, "-L", "-f", "ipv4")
    assert f"mark={0x38020000}" in _ct(ns, "-L", "-f", "ipv6")
