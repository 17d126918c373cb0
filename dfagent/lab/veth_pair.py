"""Tooling for tests and `dfagent bench mirror`: a sender and a receiver network namespace
joined by a veth pair, and a way to create sockets inside a namespace.

Namespaces made here are named with the caller's prefix (tests and benchmarks use "dfw-") and
`VethPair` always removes them (context manager; `close()` is idempotent). Nothing is routed
out of them and the root namespace is never touched.

`in_netns(name)` switches the *calling thread* into a namespace (setns(2) on
/run/netns/NAME) and back; sockets created inside keep living in that namespace.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

CLONE_NEWNET = 0x40000000

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


@contextmanager
def in_netns(name: str) -> Iterator[None]:
    orig = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open(f"/run/netns/{name}", os.O_RDONLY)
        try:
            _setns(target)
            try:
                yield
            finally:
                _setns(orig)
        finally:
            os.close(target)
    finally:
        os.close(orig)


def enter_netns(name: str) -> None:
    """Move the calling thread into a namespace for good (for a child process)."""
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        _setns(fd)
    finally:
        os.close(fd)


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


class VethPair:
    """Two namespaces `<prefix>tx` (the "switch") and `<prefix>rx` (the collector).

    Addresses: tx 192.0.2.1/24 + 2001:db8:2::1/64, rx 192.0.2.2/24 + 2001:db8:2::2/64, and on
    tx a second address 192.0.2.66 / 2001:db8:2::66 to send from a source that is not on the
    receiver's allow-list.
    """

    TX4, RX4, OTHER4 = "192.0.2.1", "192.0.2.2", "192.0.2.66"
    TX6, RX6, OTHER6 = "2001:db8:2::1", "2001:db8:2::2", "2001:db8:2::66"

    def __init__(self, prefix: str | None = None) -> None:
        if prefix is None:
            prefix = f"dfw-{os.getpid()}-"
        if not prefix.startswith("dfw-"):
            raise ValueError("namespace prefix must start with dfw-")
        self.tx = f"{prefix}tx"
        self.rx = f"{prefix}rx"
        self._made: list[str] = []

    def open(self) -> VethPair:
        try:
            for ns in (self.tx, self.rx):
                _ip("netns", "add", ns)
                self._made.append(ns)
                _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", self.tx, "link", "add", "veth0", "type", "veth", "peer", "name", "veth1",
                "netns", self.rx)  # fmt: skip
            for ns, dev, a4, a6 in (
                (self.tx, "veth0", (self.TX4, self.OTHER4), (self.TX6, self.OTHER6)),
                (self.rx, "veth1", (self.RX4,), (self.RX6,)),
            ):
                for a in a4:
                    _ip("-n", ns, "addr", "add", f"{a}/24", "dev", dev)
                for a in a6:
                    _ip("-n", ns, "-6", "addr", "add", f"{a}/64", "dev", dev, "nodad")
                _ip("-n", ns, "link", "set", dev, "up")
            self.wait_ready()
        except BaseException:
            self.close()
            raise
        return self

    def wait_ready(self, timeout: float = 5.0) -> None:
        """Wait until tx reaches rx over IPv4 and IPv6 (the veth carrier, IPv6 addresses and
        neighbours take a moment; packets sent before are lost)."""
        deadline = time.monotonic() + timeout
        for addr in (self.RX4, self.RX6):
            while True:
                r = subprocess.run(
                    ["ip", "netns", "exec", self.tx, "ping", "-c1", "-W1", "-q", addr],
                    capture_output=True,
                )
                if r.returncode == 0:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.tx} cannot reach {addr} over the veth")
                time.sleep(0.1)

    def close(self) -> None:
        while self._made:
            _ip("netns", "del", self._made.pop(), check=False)

    def __enter__(self) -> VethPair:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()
