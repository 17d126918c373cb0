"""`dfagent decode FILE`: the golden pcap, hex files, pcapng, link types, unreadable files."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from dfagent.cli.main import cli
from dfagent.wire.pcap import CaptureError, iter_capture, strip_link

DATA = Path(__file__).resolve().parents[1] / "data"
CASES = [json.loads(line) for line in (DATA / "mirror_corpus.jsonl").read_text().splitlines()]


def run(*args: str) -> Any:
    return CliRunner().invoke(cli, ["decode", *args])


def expected_lines(show_all: bool) -> list[dict[str, Any]]:
    out = []
    for n, c in enumerate(CASES, 1):
        e = c["expect"]
        if "syn" in e:
            out.append({"n": n, **e["syn"]})
        elif show_all and "skipped" in e:
            out.append({"n": n, "skipped": e["skipped"]})
        elif show_all:
            out.append({"n": n, "error_layer": e["error_layer"]})
    return out


def parse_output(text: str) -> list[dict[str, Any]]:
    rows = []
    for line in text.splitlines():
        d = json.loads(line)
        if "error" in d:
            d["error_layer"] = d.pop("error").split(":", 1)[0]
        rows.append(d)
    return rows


@pytest.mark.parametrize("show_all", [False, True])
def test_golden_pcap(show_all: bool) -> None:
    r = run(str(DATA / "mirror_corpus.pcap"), "--json", *(["--all"] if show_all else []))
    assert r.exit_code == 0, r.output
    assert parse_output(r.output) == expected_lines(show_all)


def test_hex_file_same_as_pcap(tmp_path: Path) -> None:
    p = tmp_path / "m.hex"
    lines = ["# mirrored packets, one per line"]
    for i, c in enumerate(CASES):
        h = c["hex"]
        if i % 2:  # spaced bytes, as copied from a hex dump
            h = " ".join(h[j : j + 2] for j in range(0, len(h), 2))
        lines.append(h)
        if i % 10 == 0:
            lines.append("")
    p.write_text("\n".join(lines) + "\n")
    r = run(str(p), "--json", "--all")
    assert r.exit_code == 0, r.output
    # an empty line in a hex file is skipped, so the empty (cut at 0 bytes) case is absent
    want = [d for d in expected_lines(True) if CASES[d["n"] - 1]["hex"]]
    got = parse_output(r.output)
    assert [{k: v for k, v in d.items() if k != "n"} for d in got] == [
        {k: v for k, v in d.items() if k != "n"} for d in want
    ]


def test_hex_with_ethernet_header(tmp_path: Path) -> None:
    first = next(c for c in CASES if "syn" in c["expect"])
    p = tmp_path / "e.hex"
    p.write_text("001c73000001001c730000020800" + first["hex"] + "\n")
    r = run(str(p), "--json")
    assert r.exit_code == 0
    assert json.loads(r.output) == {"n": 1, **first["expect"]["syn"]}


def test_table_output() -> None:
    r = run(str(DATA / "mirror_corpus.pcap"), "--all")
    assert r.exit_code == 0
    assert "erspan2" in r.output and "skipped: not-syn" in r.output and "error: gre:" in r.output
    assert "12.12.12.1:30002 → 1.1.1.1:80" in r.output


def test_example_line_format() -> None:
    r = run(str(DATA / "mirror_corpus.pcap"), "--json")
    d = json.loads(r.output.splitlines()[1])
    assert list(d) == ["n", "mirror", "encap", "gre_key", "session", "vlans", "family", "src",
                       "dst", "sport", "dport"]  # fmt: skip
    assert d == {"n": 2, "mirror": "5.5.5.5", "encap": "erspan1", "gre_key": None,
                 "session": None, "vlans": [100], "family": 4, "src": "12.12.12.1",
                 "dst": "1.1.1.1", "sport": 30002, "dport": 80}  # fmt: skip


@pytest.mark.parametrize(
    "content", [b"\xd4\xc3\xb2\xa1\x02\x00", b"\x00\x01\x02garbage\xff", b"hello world\n"]
)
def test_unreadable_exit_2(tmp_path: Path, content: bytes) -> None:
    p = tmp_path / "bad"
    p.write_bytes(content)
    r = run(str(p))
    assert r.exit_code == 2
    assert "error:" in r.output


def test_missing_file_exit_2(tmp_path: Path) -> None:
    r = run(str(tmp_path / "nope.pcap"))
    assert r.exit_code == 2 and "cannot open" in r.output


def test_unsupported_link_type_exit_2(tmp_path: Path) -> None:
    p = tmp_path / "x.pcap"
    p.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 105))
    r = run(str(p))
    assert r.exit_code == 2 and "link type 105" in r.output


def _pcap(linktype: int, frames: list[bytes], order: str = "<") -> bytes:
    out = struct.pack(order + "IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, linktype)
    for f in frames:
        out += struct.pack(order + "IIII", 0, 0, len(f), len(f)) + f
    return out


def _pcapng(linktype: int, frames: list[bytes]) -> bytes:
    shb = struct.pack("<IIIHHq", 0x0A0D0D0A, 28, 0x1A2B3C4D, 1, 0, -1) + struct.pack("<I", 28)
    idb = struct.pack("<IIHHI", 1, 20, linktype, 0, 65535) + struct.pack("<I", 20)
    out = shb + idb
    for f in frames:
        pad = b"\0" * (-len(f) % 4)
        blen = 32 + len(f) + len(pad)
        out += struct.pack("<IIIIIII", 6, blen, 0, 0, 0, len(f), len(f)) + f + pad
        out += struct.pack("<I", blen)
    return out


def test_link_types_and_pcapng(tmp_path: Path) -> None:
    ip = bytes.fromhex(next(c for c in CASES if "syn" in c["expect"])["hex"])
    variants = {
        "raw101.pcap": _pcap(101, [ip]),
        "raw_be.pcap": _pcap(101, [ip], ">"),
        "ipv4_228.pcap": _pcap(228, [ip]),
        "sll.pcap": _pcap(113, [b"\0" * 14 + b"\x08\x00" + ip]),
        "sll2.pcap": _pcap(276, [b"\x08\x00" + b"\0" * 18 + ip]),
        "eth.pcapng": _pcapng(1, [b"\0" * 12 + b"\x08\x00" + ip]),
        "vlan.pcap": _pcap(1, [b"\0" * 12 + b"\x81\x00\x00\x05\x08\x00" + ip]),
    }
    for name, data in variants.items():
        p = tmp_path / name
        p.write_bytes(data)
        r = run(str(p), "--json")
        assert r.exit_code == 0, (name, r.output)
        assert json.loads(r.output)["src"] == "12.12.12.1", name


def test_truncated_capture_is_read_up_to_the_cut(tmp_path: Path) -> None:
    ip = bytes.fromhex(next(c for c in CASES if "syn" in c["expect"])["hex"])
    p = tmp_path / "cut.pcap"
    p.write_bytes(_pcap(101, [ip, ip])[:-10])
    r = CliRunner().invoke(cli, ["decode", str(p), "--json"])
    assert r.exit_code == 0
    assert len([line for line in r.output.splitlines() if line.startswith("{")]) == 1


def test_non_ip_frame_is_skipped() -> None:
    assert strip_link(1, b"\0" * 12 + b"\x08\x06" + b"\0" * 28).reason == "not-ip"  # type: ignore[union-attr]
    with pytest.raises(CaptureError):
        list(iter_capture(b"\x0a\x0d\x0d\x0a" + b"\0" * 8))


# ------------------------------------------------------------------- files that are no capture


def _one_error_line(r: Any) -> str:
    """The run failed cleanly: exit 2, nothing on stdout, one `error:` line on stderr."""
    assert r.exit_code == 2, r.output
    assert isinstance(r.exception, SystemExit), r.exception
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return str(lines[0])


@pytest.mark.parametrize("as_json", [False, True])
def test_empty_file(tmp_path: Path, as_json: bool) -> None:
    p = tmp_path / "empty.pcap"
    p.write_bytes(b"")
    r = run(str(p), *(["--json"] if as_json else []))
    assert _one_error_line(r) == f"error: {p}: empty file: not a pcap, pcapng or hex capture"


def test_blank_file(tmp_path: Path) -> None:
    p = tmp_path / "blank"
    p.write_bytes(b" \n\n\t\n")
    r = run(str(p))
    assert _one_error_line(r) == f"error: {p}: blank file: not a pcap, pcapng or hex capture"


@pytest.mark.parametrize(
    "content, why",
    [
        (b"hello world\n", "line 1 is not hex ('h' is not a hex digit)"),
        (b"# a comment\n4500\nGET / HTTP/1.1\n", "line 3 is not hex ('G' is not a hex digit)"),
        (b"4500abc\n", "line 1 is not hex (odd number of hex digits)"),
        (
            b"\x00\x01\x02garbage\xff",
            "no pcap or pcapng header, and byte 0xff at offset 10 is not ASCII text",
        ),
        (
            "caf\u00e9\n".encode(),
            "no pcap or pcapng header, and byte 0xc3 at offset 3 is not ASCII text",
        ),
    ],
)
def test_not_a_capture(tmp_path: Path, content: bytes, why: str) -> None:
    p = tmp_path / "notes.txt"
    p.write_bytes(content)
    for args in ([], ["--json"], ["--all"]):
        r = run(str(p), *args)
        assert _one_error_line(r) == f"error: {p}: not a pcap, pcapng or hex capture: {why}"


def test_comments_only_hex_file_has_no_packets(tmp_path: Path) -> None:
    p = tmp_path / "none.hex"
    p.write_text("# nothing mirrored yet\n\n")
    r = run(str(p))
    assert r.exit_code == 0
    assert r.stdout.splitlines()[-1].startswith("0 packets: 0 SYNs")
