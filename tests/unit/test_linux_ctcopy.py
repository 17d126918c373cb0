"""The conntrack copy's parts without a kernel: the census parser and the map sync
(the real thing: tests/lab/test_ct_flush.py)."""

from __future__ import annotations

import re
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
    """Holds the copy maps' elements and handles like the kernel would."""

    def __init__(self, refuse: str = "") -> None:
        self.scripts: list[str] = []
        self.refuse = refuse  # an element text nft rejects
        self.handles = {"copy4": 7, "copy6": 8}  # a missing map: absent

    def run(self, script: str) -> str:
        named = set(re.findall(r"\bcopy[46]\b", script))
        gone = any(m not in self.handles for m in named)
        if gone or (self.refuse and self.refuse in script):
            raise NftError(script, 1, "Error: No such file or directory")
        self.scripts.append(script)
        return ""

    def run_json(self, command: str, terse: bool = False) -> list[dict[str, Any]]:
        assert command == "list maps inet" and terse  # never a listing that fetches elements
        return [
            {"map": {"table": "dfagent", "name": n, "handle": h}} for n, h in self.handles.items()
        ]


FLOWS = [
    ("10.0.0.2", "1.1.1.1", 40000, 80, S1),
    ("10.0.0.3", "1.1.1.1", 40000, 80, S2),
    ("fd00::2", "2001:db8::1", 40002, 80, S1),
]


def test_sync_writes_everything_once_then_only_the_difference() -> None:
    nft = FakeNft()
    copy = CtCopy(nft)  # type: ignore[arg-type]
    res = copy.sync(FLOWS, {S1})  # S2 is dead: its pin must not come back
    assert (res.added, res.deleted, res.skipped, res.copied, res.full) == (2, 0, 1, 2, True)
    text = "".join(nft.scripts)
    assert text.startswith("flush map inet dfagent copy4\nadd element inet dfagent copy4 {")
    assert "10.0.0.2 . 1.1.1.1 . 40000 . 80 : jump pin_0dfa0001" in text
    assert "flush map inet dfagent copy6\n" in text and "10.0.0.3" not in text
    nft.scripts.clear()
    assert copy.sync(FLOWS, {S1}).added == 0 and nft.scripts == []  # nothing changed
    # one flow ended, one is new, one moved to another slot (re-recorded after a release)
    now = [("10.0.0.9", "1.1.1.1", 40000, 80, S1), ("fd00::2", "2001:db8::1", 40002, 80, S2)]
    res = copy.sync(now, {S1, S2})
    assert (res.added, res.deleted, res.full, res.copied) == (2, 2, False, 2)
    v6 = [x for x in nft.scripts if "copy6" in x][0]
    assert v6.index("delete element") < v6.index("add element")  # replaced in one transaction
    assert "fd00::2 . 2001:db8::1 . 40002 . 80 : jump pin_0dfa0002" in v6


def test_a_recreated_map_is_written_whole_again() -> None:
    nft = FakeNft()
    copy = CtCopy(nft)  # type: ignore[arg-type]
    copy.sync(FLOWS, {S1, S2}, table_handle=3)
    nft.handles["copy4"] = 99  # a repair made it anew (empty)
    nft.scripts.clear()
    res = copy.sync(FLOWS, {S1, S2}, table_handle=3)
    assert res.full and res.added == 3
    assert nft.scripts[0].startswith("flush map inet dfagent copy4\n")
    # a firewall reload re-creates the table: the maps get their old handles back, the
    # table a new one (the datapath's check reads it)
    assert not copy.sync(FLOWS, {S1, S2}, table_handle=3).full
    assert copy.sync(FLOWS, {S1, S2}, table_handle=4).full
    assert not copy.sync(FLOWS, {S1, S2}, table_handle=4).full


def test_sync_isolates_a_refused_element_and_stops_when_the_map_is_gone() -> None:
    nft = FakeNft(refuse="10.0.0.3 .")
    copy = CtCopy(nft)  # type: ignore[arg-type]
    res = copy.sync(FLOWS, {S1, S2})
    assert (res.added, res.failed) == (2, 1)
    nft.refuse = ""
    assert copy.sync(FLOWS, {S1, S2}).added == 1  # retried: it was never in the map
    nft = FakeNft()
    del nft.handles["copy4"]
    res = CtCopy(nft).sync(FLOWS, {S1, S2})  # type: ignore[arg-type]
    assert (res.added, res.failed) == (1, 2)


@pytest.mark.parametrize("on", [True, False])
def test_config_and_cli_reach_the_ruleset(on: bool) -> None:
    from click.testing import CliRunner

    from dfagent.agent.run import datapath_config
    from dfagent.cli.main import cli
    from dfagent.config import parse

    vip = {"prefix": "192.0.2.10/32", "mode": "kernel"}
    dp = datapath_config(parse({"vips": [vip], "linux": {"ct_copy": on}}))
    assert dp.ct_copy is on and dp.ruleset().copies is on
    assert ("copy4" in dp.ruleset().maps) is on
    # map mode and one direction never copy (their pins are not conntrack marks alone)
    one = datapath_config(parse({"vips": [vip], "linux": {"one_direction": True, "ct_copy": on}}))
    assert not one.ruleset().copies
    help_text = CliRunner().invoke(cli, ["linux", "kernel", "--help"]).output
    assert "--ct-copy" in help_text
