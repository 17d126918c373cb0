"""The kernel's jhash of an IPv6 5-tuple, as nftables computes it for the one-direction maps.

``flow6`` (one-direction mode) is keyed by ``jhash ip6 saddr . ip6 daddr . tcp sport .
tcp dport mod 0xffffffff seed 0xdfa`` (see :func:`dfagent.backends.linux.ruleset.flow_key`
for why), so map mode must compute the same value to write a pin. nft hashes the
concatenation as it sits in its registers: each field padded with zeros to a multiple of
4 bytes (a port is its two bytes in network order, then two zero bytes), 40 bytes in all;
the kernel's ``jhash()`` (Bob Jenkins' lookup3, reading little-endian words on x86) and then
``reciprocal_scale(hash, mod)``.
"""

from __future__ import annotations

import ipaddress
import struct
import sys

FLOW_HASH_SEED = 0x0DFA
FLOW_HASH_MOD = 0xFFFFFFFF

_M = 0xFFFFFFFF
JHASH_INITVAL = 0xDEADBEEF
_WORD = "<I" if sys.byteorder == "little" else ">I"


def _rol(x: int, k: int) -> int:
    return ((x << k) | (x >> (32 - k))) & _M


# (shift, which of a/b/c) steps of __jhash_mix and __jhash_final, as in the kernel header
_MIX = (4, 6, 8, 16, 19, 4)
_FINAL = (14, 11, 25, 16, 4, 14, 24)


def _mix(a: int, b: int, c: int) -> tuple[int, int, int]:
    x = [a, b, c]  # a -= c; a ^= rol(c, 4); c += b; then rotate roles
    for i, r in enumerate(_MIX):
        p, q, n = i % 3, (i + 2) % 3, (i + 1) % 3  # target, mixer, next
        x[p] = (x[p] - x[q]) & _M
        x[p] ^= _rol(x[q], r)
        x[q] = (x[q] + x[n]) & _M
    return x[0], x[1], x[2]


def _final(a: int, b: int, c: int) -> tuple[int, int, int]:
    x = [a, b, c]  # c ^= b; c -= rol(b, 14); a ^= c; a -= rol(c, 11); …
    for i, r in enumerate(_FINAL):
        p, q = (2 + i) % 3, (1 + i) % 3
        x[p] ^= x[q]
        x[p] = (x[p] - _rol(x[q], r)) & _M
    return x[0], x[1], x[2]


def jhash(key: bytes, initval: int) -> int:
    """include/linux/jhash.h ``jhash(key, length, initval)``."""
    length = len(key)
    a = b = c = (JHASH_INITVAL + length + initval) & _M
    k = 0
    while length > 12:
        a = (a + struct.unpack_from(_WORD, key, k)[0]) & _M
        b = (b + struct.unpack_from(_WORD, key, k + 4)[0]) & _M
        c = (c + struct.unpack_from(_WORD, key, k + 8)[0]) & _M
        a, b, c = _mix(a, b, c)
        length -= 12
        k += 12
    if length == 0:
        return c
    tail = key[k:] + bytes(12 - length)  # the byte-wise tail adds, as little-endian words
    a = (a + int.from_bytes(tail[0:4], "little")) & _M
    b = (b + int.from_bytes(tail[4:8], "little")) & _M
    c = (c + int.from_bytes(tail[8:12], "little")) & _M
    return _final(a, b, c)[2]


def flow6_hash(src: str, dst: str, sport: int, dport: int) -> int:
    """The ``flow6`` key of an IPv6 TCP flow (client → VIP)."""
    data = (
        ipaddress.IPv6Address(src).packed
        + ipaddress.IPv6Address(dst).packed
        + struct.pack("!H2x", sport)
        + struct.pack("!H2x", dport)
    )
    h = jhash(data, FLOW_HASH_SEED)
    return (h * FLOW_HASH_MOD) >> 32  # reciprocal_scale
