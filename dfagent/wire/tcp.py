"""The first 14 bytes of TCP: ports and flags are all a SYN decoder needs.

Switches truncate mirrored packets, so options and payload may be missing; a header cut
before the flags byte cannot be classified and is an error.
"""

from __future__ import annotations

from struct import Struct

from dfagent.wire.errors import DecodeError

TCP_FIN = 0x01
TCP_SYN = 0x02
TCP_RST = 0x04
TCP_PSH = 0x08
TCP_ACK = 0x10
#: A connection opener: SYN set, ACK clear (a SYN-ACK is the server's answer).
SYN_MASK = TCP_SYN | TCP_ACK
NEEDED = 14  # through the flags byte

_HEAD = Struct("!HH8xBB")  # sport dport (seq ack) data-offset flags


def parse_tcp(buf: bytes, off: int, end: int) -> tuple[int, int, int]:
    """Return (sport, dport, flags)."""
    have = end - off
    if have < 4:
        raise DecodeError("tcp", off, "truncated before the ports", f"{max(have, 0)} bytes")
    if have < NEEDED:
        raise DecodeError("tcp", off, "truncated before the flags", f"{have} bytes")
    sport, dport, doff, flags = _HEAD.unpack_from(buf, off)
    if doff >> 4 < 5:
        raise DecodeError("tcp", off, "data offset below 5", str(doff >> 4))
    return sport, dport, flags


def is_syn(flags: int) -> bool:
    return flags & SYN_MASK == TCP_SYN
