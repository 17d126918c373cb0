"""The forged PMTU errors of `bench icmp` parse back to the flow they quote (the lab test
tests/lab/test_bench_paths.py sends them through real routers)."""

from __future__ import annotations

import socket
import struct

from dfagent.lab.icmp_errors import _csum, frag_needed, packet_too_big, parse4, parse6

VIPS = {"1.1.1.1", "2001:db8::1"}


def _outer4(icmp: bytes) -> bytes:
    head = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), 0, 0, 64, 1, 0,
                       socket.inet_aton("10.0.0.1"), socket.inet_aton("1.1.1.1"))  # fmt: skip
    return head + icmp


def test_frag_needed_round_trip_and_checksum():
    icmp = frag_needed("1.1.1.1", "10.1.0.10", 40000)
    assert icmp[:2] == b"\x03\x04" and _csum(icmp) == 0  # a valid ICMP checksum
    assert parse4(_outer4(icmp), VIPS) == 40000
    assert parse4(_outer4(frag_needed("9.9.9.9", "10.1.0.10", 40000)), VIPS) is None
    assert parse4(_outer4(frag_needed("1.1.1.1", "10.1.0.10", 40000, sport=81)), VIPS) is None


def test_packet_too_big_round_trip():
    msg = packet_too_big("2001:db8::1", "fd00:1::10", 50000)
    assert msg[0] == 2 and struct.unpack("!I", msg[4:8])[0] == 1500
    assert parse6(msg, VIPS) == 50000
    assert parse6(b"\x01" + msg[1:], VIPS) is None  # destination unreachable, not too big
