"""Ethernet II with any stack of 802.1Q / 802.1ad (and the older 0x9100) VLAN tags."""

from __future__ import annotations

from struct import Struct

from dfagent.wire.errors import DecodeError

ETH_HEADER = 14
ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_IPV6 = 0x86DD
TPID_8021Q = 0x8100
TPID_8021AD = 0x88A8
TPID_QINQ_OLD = 0x9100
VLAN_TPIDS = frozenset((TPID_8021Q, TPID_8021AD, TPID_QINQ_OLD))
#: More tags than this is not a real frame.
MAX_VLAN_TAGS = 8

_TYPE = Struct("!H")
_TAG = Struct("!HH")  # tci, next type


def parse_ether(buf: bytes, off: int, end: int) -> tuple[int, tuple[int, ...], int]:
    """Return (EtherType after the tags, VLAN ids outermost first, payload offset)."""
    if end - off < ETH_HEADER:
        raise DecodeError("ether", off, "truncated header", f"{end - off} of 14 bytes")
    etype = _TYPE.unpack_from(buf, off + 12)[0]
    p = off + ETH_HEADER
    vlans: list[int] = []
    while etype in VLAN_TPIDS:
        if len(vlans) >= MAX_VLAN_TAGS:
            raise DecodeError("ether", p, "too many VLAN tags", f"> {MAX_VLAN_TAGS}")
        if end - p < 4:
            raise DecodeError("ether", p, "truncated VLAN tag")
        tci, etype = _TAG.unpack_from(buf, p)
        vlans.append(tci & 0x0FFF)
        p += 4
    return etype, tuple(vlans), p
