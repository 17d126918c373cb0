"""`dfagent decode FILE`: the golden pcap, hex files, pcapng, link types, unreadable files."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from dfagent.cli.main import cli
from dfagent.wire.errors import Skip
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
    skip = strip_link(1, b"\0" * 12 + b"\x08\x06" + b"\0" * 28)
    assert isinstance(skip, Skip) and skip.reason == "not-ip"
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


# ------------------------------------------------------- pcapng with several link types


def _pcapng_ifaces(linktypes: list[int], frames: list[tuple[int, bytes]]) -> bytes:
    """A pcapng section with one interface per link type and (interface, frame) packets."""
    shb = struct.pack("<IIIHHq", 0x0A0D0D0A, 28, 0x1A2B3C4D, 1, 0, -1) + struct.pack("<I", 28)
    out = shb
    for lt in linktypes:
        out += struct.pack("<IIHHI", 1, 20, lt, 0, 65535) + struct.pack("<I", 20)
    for iface, f in frames:
        pad = b"\0" * (-len(f) % 4)
        blen = 32 + len(f) + len(pad)
        out += struct.pack("<IIIIIII", 6, blen, iface, 0, 0, len(f), len(f)) + f + pad
        out += struct.pack("<I", blen)
    return out


def _mixed_pcapng() -> bytes:
    """Interfaces 0 Ethernet, 1 USER0 (147), 2 raw IP, 3 IEEE 802.11 (105); 9 packets: 3 on the
    supported interfaces (2 SYNs and a SYN-ACK), 5 on interface 1, 1 on interface 3."""
    syn = bytes.fromhex(next(c for c in CASES if "syn" in c["expect"])["hex"])
    synack = bytes.fromhex(next(c for c in CASES if c["name"] == "erspan1 SYN-ACK")["hex"])
    eth = b"\0" * 12 + b"\x08\x00"
    user0 = b"\x01\x02\x03\x04 user-defined link layer"
    wifi = b"\x08\x02" + b"\0" * 30
    return _pcapng_ifaces(
        [1, 147, 101, 105],
        [(1, user0), (0, eth + syn), (1, user0), (1, user0), (2, syn), (3, wifi),
         (1, user0), (0, eth + synack), (1, user0)],
    )  # fmt: skip


def test_pcapng_mixed_link_types_table(tmp_path: Path) -> None:
    p = tmp_path / "mixed.pcapng"
    p.write_bytes(_mixed_pcapng())
    r = run(str(p))
    assert r.exit_code == 0, r.output
    assert r.stderr == ""
    lines = r.stdout.splitlines()
    assert [line.split()[0] for line in lines[1:3]] == ["2", "5"]  # n: the number in the file
    assert lines[3:] == [
        "3 packets: 2 SYNs, 1 skipped, 0 undecodable (--all lists them)",
        "skipped 5 packets on interface 1: link type 147 (USER0) not supported",
        "skipped 1 packet on interface 3: link type 105 (IEEE 802.11) not supported",
    ]


def test_pcapng_mixed_link_types_json(tmp_path: Path) -> None:
    p = tmp_path / "mixed.pcapng"
    p.write_bytes(_mixed_pcapng())
    r = run(str(p), "--json", "--all")
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [(d["n"], d.get("encap"), d.get("skipped")) for d in rows] == [
        (2, "erspan1", None),
        (5, "erspan1", None),
        (8, None, "not-syn"),
    ]
    assert [json.loads(line) for line in r.stderr.splitlines()] == [
        {"skipped": "unsupported-link-type", "packets": 5, "interface": 1, "linktype": 147},
        {"skipped": "unsupported-link-type", "packets": 1, "interface": 3, "linktype": 105},
    ]


@pytest.mark.parametrize(
    "linktypes, frames, why",
    [
        ([147], [(0, b"abcd"), (0, b"efgh")], "interface 0 has link type 147 (USER0)"),
        ([147], [], "interface 0 has link type 147 (USER0)"),
        (
            [105, 999],
            [(1, b"abcd"), (0, b"efgh")],
            "interface 0 has link type 105 (IEEE 802.11), interface 1 has link type 999",
        ),
    ],
)
def test_pcapng_only_unsupported_interfaces(
    tmp_path: Path, linktypes: list[int], frames: list[tuple[int, bytes]], why: str
) -> None:
    p = tmp_path / "wifi.pcapng"
    p.write_bytes(_pcapng_ifaces(linktypes, frames))
    for args in ([], ["--json"]):
        r = run(str(p), *args)
        assert _one_error_line(r) == f"error: {p}: no interface with a supported link type: {why}"


def test_pcapng_second_section(tmp_path: Path) -> None:
    syn = bytes.fromhex(next(c for c in CASES if "syn" in c["expect"])["hex"])
    p = tmp_path / "two.pcapng"
    p.write_bytes(_pcapng_ifaces([101], [(0, syn)]) + _pcapng_ifaces([101, 147], [(1, b"ab")]))
    r = run(str(p))
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines()[-1] == (
        "skipped 1 packet on interface 1 of section 1: link type 147 (USER0) not supported"
    )
    r = run(str(p), "--json")
    assert json.loads(r.stderr) == {
        "skipped": "unsupported-link-type", "packets": 1, "section": 1, "interface": 1,
        "linktype": 147,
    }  # fmt: skip
    p.write_bytes(_pcapng_ifaces([147], [(0, b"ab")]) + _pcapng_ifaces([105], []))
    assert _one_error_line(run(str(p))) == (
        f"error: {p}: no interface with a supported link type: interface 0 of section 0 has "
        "link type 147 (USER0), interface 0 of section 1 has link type 105 (IEEE 802.11)"
    )


def test_pcap_unsupported_link_type_message(tmp_path: Path) -> None:
    p = tmp_path / "wifi.pcap"
    p.write_bytes(_pcap(105, [b"abcd"]))
    r = run(str(p))
    assert _one_error_line(r) == f"error: {p}: pcap link type 105 (IEEE 802.11) not supported"


def test_iter_capture_reports_interfaces() -> None:
    frames = list(iter_capture(_mixed_pcapng()))
    assert [(f.section, f.interface, f.linktype) for f in frames] == [
        (0, 1, 147), (0, 0, 1), (0, 1, 147), (0, 1, 147), (0, 2, 101), (0, 3, 105),
        (0, 1, 147), (0, 0, 1), (0, 1, 147),
    ]  # fmt: skip
    assert frames[0].data == b"\x01\x02\x03\x04 user-defined link layer"
    with pytest.raises(ValueError, match="link type 147"):
        strip_link(147, frames[0].data)
