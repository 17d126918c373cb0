"""Layer-level checks of dfagent.wire that the corpus does not spell out."""

from __future__ import annotations

import socket

import pytest

from dfagent.lab.mirror_sender import ENCAPS, TCP_ACK, TCP_SYN, Encap, mirrored_syn
from dfagent.wire import SKIP_NOT_SYN, DecodeError, SynEvent, decode_mirror, decode_slow
from dfagent.wire.erspan import PAYLOAD_ETHER, PAYLOAD_IPV4, classify_88be
from dfagent.wire.gre import parse_gre
from dfagent.wire.ip import MAX_EXTENSION_HEADERS


@pytest.mark.parametrize("encap", ENCAPS)
@pytest.mark.parametrize("outer", ["5.5.5.5", "2001:db8::5"])
@pytest.mark.parametrize("inner", [("10.0.0.1", "10.0.0.2"), ("2001:db8:1::1", "2001:db8:1::2")])
@pytest.mark.parametrize("vlans", [(), (100,), (10, 20)])
@pytest.mark.parametrize("key", [None, 0xFFFFFFFF])
def test_encoder_round_trip(
    encap: Encap, outer: str, inner: tuple[str, str], vlans: tuple[int, ...], key: int | None
) -> None:
    collector = "9.9.9.9" if ":" not in outer else "2001:db8::9"
    raw = mirrored_syn(encap, outer, collector, *inner, 54321, 443, vlans=vlans, key=key,
                       session=1023, seq=7)  # fmt: skip
    ev = decode_mirror(raw)
    assert ev == decode_slow(raw)
    assert isinstance(ev, SynEvent)
    assert (ev.mirror, ev.encap, ev.gre_key, ev.src, ev.dst, ev.sport, ev.dport) == (
        outer,
        encap,
        key,
        inner[0],
        inner[1],
        54321,
        443,
    )
    assert ev.vlans == (vlans if encap != "ip" else ())
    assert ev.session == (1023 if encap in ("erspan2", "erspan3") else None)
    assert ev.family == (4 if "." in inner[0] else 6)
    assert ev.src_addr == socket.inet_pton(
        socket.AF_INET if ev.family == 4 else socket.AF_INET6, inner[0]
    )


def test_syn_ack_is_skipped_not_an_error() -> None:
    raw = mirrored_syn("erspan2", "5.5.5.5", "9.9.9.9", "1.1.1.1", "2.2.2.2", 1, 2,
                       flags=TCP_SYN | TCP_ACK)  # fmt: skip
    assert decode_mirror(raw) is SKIP_NOT_SYN


def test_gre_flags_order_checksum_key_sequence() -> None:
    buf = bytes.fromhex("b000 88be 0000 0000 00000011 00000022".replace(" ", ""))
    flags, proto, key, seq, off = parse_gre(buf, 0, len(buf))
    assert (proto, key, seq, off) == (0x88BE, 0x11, 0x22, 16)


def test_decode_error_fields() -> None:
    with pytest.raises(DecodeError) as ei:
        parse_gre(b"\x00\x01\x88\xbe", 0, 4)
    e = ei.value
    assert (e.layer, e.offset, e.reason) == ("gre", 0, "version is not 0")
    assert str(e).startswith("gre: version is not 0")
    assert e.label == "gre: version is not 0"


def test_classify_prefers_nothing_blindly() -> None:
    ether = bytes.fromhex("001c73000001001c730000020800") + bytes(40)
    assert classify_88be(ether, 0, len(ether)) == PAYLOAD_ETHER
    raw = mirrored_syn("ip", "5.5.5.5", "9.9.9.9", "1.1.1.1", "2.2.2.2", 1, 2)[24:]
    assert classify_88be(raw, 0, len(raw)) == PAYLOAD_IPV4


def test_extension_header_limit_is_small() -> None:
    assert MAX_EXTENSION_HEADERS <= 16
