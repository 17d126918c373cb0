"""The conntrack copy's parts without a kernel: the census parser and the generation
rewrites (the real thing: tests/lab/test_ct_flush.py)."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from dfagent.backends.linux import conntrack
from dfagent.backends.linux.ctcopy import CtCopy
from dfagent.backends.linux.nft import NftError
from dfagent.core.marks import MarkSpace

SP = MarkSpace()
S1, S2 = 0x0DFA0001, 0x0DFA0002
V4 = (
    b"tcp      6 431999 ESTABLISHED src=10.0.0.2 dst=1.1.1.1 sport=40000 dport=80 src=10.0.1.2"
    b" dst=10.0.0.2 sport=80 dport=40000 [ASSURED] mark=%d use=1\n"
    b"tcp      6 110 TIME_WAIT src=10.0.0.2 dst=1.1.1.1 sport=40001 dport=80 src=10.0.1.2"
    b" dst=10.0.0.2 sport=80 dport=40001 [ASSURED] mark=%d use=1\n"
    b"udp      17 29 src=10.0.0.2 dst=1.1.1.1 sport=5000 dport=53 [UNREPLIED] src=10.0.1.2"
    b" dst=10.0.0.2 sport=53 dport=5000 mark=%d use=1\n"
) % (SP.mark(S1), SP.mark(S1), SP.mark(S2))
V6 = (
    b"tcp      6 431999 ESTABLISHED src=fd00::2 dst=2001:db8::1 sport=40002 dport=80 src=fd00:1::2"
    b" dst=fd00::2 sport=80 dport=40002 [ASSURED] mark=%d use=1\n" % SP.mark(S2)
)


def test_census_counts_and_lists_live_tcp_pins(monkeypatch: pytest.MonkeyPatch) -> None:
    def fake(args: list[str], timeout: float) -> subprocess.CompletedProcess[bytes]:
        out = V4 if args[2] == "ipv4" else V6
        return subprocess.CompletedProcess(args, 0, out, b"")

    monkeypatch.setattr(conntrack, "_conntrack", fake)
    counts, flows = conntrack.census(SP)
    assert counts == {S1: 1, S2: 2}  # TIME_WAIT is no pin; UDP counts but is not copied
    assert flows == [
        ("10.0.0.2", "1.1.1.1", 40000, 80, S1),
        ("fd00::2", "2001:db8::1", 40002, 80, S2),
    ]
    assert conntrack.count_by_slot(SP) == counts


class FakeNft:
    def __init__(self, refuse: str = "", missing: bool = False) -> None:
        self.scripts: list[str] = []
        self.refuse = refuse  # an element text nft rejects
        self.missing = missing  # the maps are gone (a firewall reload)

    def run(self, script: str) -> str:
        if self.missing or (self.refuse and self.refuse in script):
            raise NftError(script, 1, "Error: No such file or directory")
        self.scripts.append(script)
        return ""

    def run_json(self, command: str, terse: bool = False) -> list[dict[str, Any]]:
        if self.missing:
            raise NftError(command, 1, "Error: No such file or directory")
        return []


FLOWS = [
    ("10.0.0.2", "1.1.1.1", 40000, 80, S1),
    ("10.0.0.3", "1.1.1.1", 40000, 80, S2),
    ("fd00::2", "2001:db8::1", 40002, 80, S1),
]


def test_sync_rewrites_generations_in_turn_and_skips_dead_slots() -> None:
    nft = FakeNft()
    copy = CtCopy(nft)  # type: ignore[arg-type]
    res = copy.sync(FLOWS, {S1}, period=6.0)
    assert (res.written, res.skipped, res.failed, res.generation) == (2, 1, 0, "a")
    text = "".join(nft.scripts)
    assert text.startswith("flush map inet dfagent copy4a\nadd element inet dfagent copy4a {")
    assert "10.0.0.2 . 1.1.1.1 . 40000 . 80 timeout 600s : jump pin_0dfa0001" in text
    assert "flush map inet dfagent copy6a\n" in text and "10.0.0.3" not in text
    nft.scripts.clear()
    # the next census writes the other generation; a long census period lengthens timeouts
    res = copy.sync(FLOWS, {S1, S2}, period=1000.0)
    assert (res.written, res.generation) == (3, "b")
    assert "copy4b" in nft.scripts[0] and "timeout 3001s" in nft.scripts[0]
    assert copy.sync([], {S1}, 6.0).generation == "a"


def test_sync_isolates_a_refused_element_and_stops_when_the_map_is_gone() -> None:
    nft = FakeNft(refuse="10.0.0.3 .")
    res = CtCopy(nft).sync(FLOWS, {S1, S2}, 6.0)  # type: ignore[arg-type]
    assert (res.written, res.failed) == (2, 1)
    res = CtCopy(FakeNft(missing=True)).sync(FLOWS, {S1, S2}, 6.0)  # type: ignore[arg-type]
    assert (res.written, res.failed) == (0, 3)
