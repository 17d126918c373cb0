"""Next hops and VIPs as plain values (no I/O).

A *next hop* is what the kernel's route lookup picked for a packet, as nftables sees it in
postrouting: the output interface name plus ``rt ip nexthop`` (or ``rt ip6 nexthop``). The
route family (the VIP's family) is part of the identity: an IPv4 VIP routed via an IPv6
link-local gateway (RFC 5549) gets a v4 mark, a v4 rule and a v4 route in its table.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, order=True)
class NextHop:
    """One ECMP member: route family (4 or 6), output interface, gateway address."""

    family: int
    ifname: str
    gateway: str

    def __post_init__(self) -> None:
        if self.family not in (4, 6):
            raise ValueError(f"family must be 4 or 6, not {self.family!r}")
        if not self.ifname or len(self.ifname) > 15:
            raise ValueError(f"bad interface name {self.ifname!r}")
        # normalise the address text so equal next hops compare equal
        object.__setattr__(self, "gateway", str(ipaddress.ip_address(self.gateway)))

    @property
    def gateway_family(self) -> int:
        return ipaddress.ip_address(self.gateway).version

    @property
    def via_v6_for_v4(self) -> bool:
        """An IPv4 route via an IPv6 gateway (RFC 5549, BGP unnumbered)."""
        return self.family == 4 and self.gateway_family == 6

    @property
    def link_local(self) -> bool:
        return ipaddress.ip_address(self.gateway).is_link_local

    def key(self) -> str:
        """Stable text form used in the state file: ``4 eth1 10.0.1.2``."""
        return f"{self.family} {self.ifname} {self.gateway}"

    @classmethod
    def from_key(cls, text: str) -> NextHop:
        parts = text.split()
        if len(parts) != 3 or parts[0] not in ("4", "6"):
            raise ValueError(f"bad next-hop key {text!r}")
        return cls(int(parts[0]), parts[1], parts[2])

    def __str__(self) -> str:
        return f"{self.gateway}%{self.ifname}"


def parse_vip(text: str) -> IPNetwork:
    """A VIP prefix (``1.1.1.1/32``, ``2001:db8::1``); host bits must be clear."""
    return ipaddress.ip_network(text.strip(), strict=True)


def vip_family(vip: IPNetwork) -> int:
    return vip.version


def in_vips(dst: str, vips: Sequence[IPNetwork]) -> bool:
    """Whether address ``dst`` lies in one of ``vips`` (no VIPs: every address does; a
    malformed address: none)."""
    if not vips:
        return True
    try:
        addr = ipaddress.ip_address(dst)
    except ValueError:
        return False
    return any(addr.version == v.version and addr in v for v in vips)
