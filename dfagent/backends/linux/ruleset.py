"""The nftables ruleset dfagent owns, rendered as one nft script (pure; no I/O).

Everything lives in ``table inet dfagent``. :func:`render_base` gives a script that creates
the table if needed and replaces chains and VIP sets atomically (one transaction) while
leaving map *contents* alone, so a restart over a running datapath loses no pin.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from dfagent.core.marks import MARK_BASE, MARK_MASK
from dfagent.core.nexthops import IPNetwork, NextHop

TABLE = "dfagent"
FAMILY = "inet"
T = f"{FAMILY} {TABLE}"
NH_MAP_SIZE = 65536
DEFAULT_PIN_MAP_SIZE = 2_000_000
DEFAULT_PIN_TIMEOUT = 300


@dataclass(frozen=True)
class RulesetConfig:
    vips: tuple[IPNetwork, ...]
    record: bool = True  # kernel mode: record rt nexthop in ct mark (postrouting)
    pin_maps: bool = False  # map mode: per-flow 5-tuple → mark maps
    pin_map_size: int = DEFAULT_PIN_MAP_SIZE
    pin_timeout: int = DEFAULT_PIN_TIMEOUT

    @property
    def vips4(self) -> list[IPNetwork]:
        return sorted((v for v in self.vips if v.version == 4), key=str)

    @property
    def vips6(self) -> list[IPNetwork]:
        return sorted((v for v in self.vips if v.version == 6), key=str)


def _mark(m: int) -> str:
    return f"0x{m:08x}"


def render_base(cfg: RulesetConfig) -> str:
    """The script that (re)installs dfagent's table, sets, maps and chains."""
    ours = f"ct mark and {_mark(MARK_MASK)} == {_mark(MARK_BASE)}"
    lines = [
        f"add table {T}",
        f"add map {T} nh4 {{ type ifname . ipv4_addr : mark; size {NH_MAP_SIZE}; }}",
        f"add map {T} nh6 {{ type ifname . ipv6_addr : mark; size {NH_MAP_SIZE}; }}",
        f"add set {T} released {{ type mark; size {NH_MAP_SIZE}; }}",
        f"add set {T} vip4 {{ type ipv4_addr; flags interval; }}",
        f"add set {T} vip6 {{ type ipv6_addr; flags interval; }}",
    ]
    if cfg.pin_maps:
        for fam, addr in (("4", "ipv4_addr"), ("6", "ipv6_addr")):
            lines.append(
                f"add map {T} pin{fam} {{ type {addr} . {addr} . inet_service . inet_service"
                f" : mark; size {cfg.pin_map_size}; flags timeout;"
                f" timeout {cfg.pin_timeout}s; }}"
            )
    lines += [
        f"add chain {T} prerouting"
        " { type filter hook prerouting priority mangle; policy accept; }",
        f"add chain {T} output {{ type route hook output priority mangle; policy accept; }}",
        f"add chain {T} postrouting"
        " { type filter hook postrouting priority mangle; policy accept; }",
        f"flush chain {T} prerouting",
        f"flush chain {T} output",
        f"flush chain {T} postrouting",
        f"flush set {T} vip4",
        f"flush set {T} vip6",
    ]
    if cfg.vips4:
        lines.append(f"add element {T} vip4 {{ {', '.join(map(str, cfg.vips4))} }}")
    if cfg.vips6:
        lines.append(f"add element {T} vip6 {{ {', '.join(map(str, cfg.vips6))} }}")
    for chain in ("prerouting", "output"):
        # later packets of a pinned connection: conntrack mark → packet mark → ip rule
        lines.append(f"add rule {T} {chain} ct direction original {ours} meta mark set ct mark")
        if cfg.pin_maps:
            for ipf, fam in (("ip", "4"), ("ip6", "6")):
                lines.append(
                    f"add rule {T} {chain} {ipf} daddr @vip{fam} ct direction original"
                    f" meta mark set {ipf} saddr . {ipf} daddr . tcp sport . tcp dport"
                    f" map @pin{fam} ct mark set meta mark"
                )
        # pins of dead next hops: forget the mark so the connection re-routes now
        lines.append(
            f"add rule {T} {chain} ct direction original meta mark @released"
            " meta mark set 0 ct mark set 0"
        )
    if cfg.record:
        for ipf, fam in (("ip", "4"), ("ip6", "6")):
            lines.append(
                f"add rule {T} postrouting ct direction original ct mark 0 {ipf} daddr @vip{fam}"
                f" ct mark set oifname . rt {ipf} nexthop map @nh{fam}"
            )
    return "\n".join(lines) + "\n"


def nh_map_keys(nh: NextHop, vips: Iterable[str]) -> list[tuple[str, str]]:
    """(map name, ``"ifname" . address``) keys under which nft sees this next hop.

    For an IPv4 route via an IPv6 gateway ``rt ip nexthop`` yields the packet's destination,
    so the key is the output interface plus each /32 VIP the next hop carries.
    """
    if nh.via_v6_for_v4:
        keys = []
        for v in sorted(vips):
            net = ipaddress.ip_network(v)
            if net.version == 4 and net.prefixlen == 32:
                keys.append(("nh4", f'"{nh.ifname}" . {net.network_address}'))
        return keys
    return [(f"nh{nh.family}", f'"{nh.ifname}" . {nh.gateway}')]


def render_elements(verb: str, mapname: str, items: Iterable[str]) -> str:
    """``add|delete element`` for pre-rendered elements (``key : value`` or ``key``)."""
    body = ", ".join(items)
    return f"{verb} element {T} {mapname} {{ {body} }}\n" if body else ""


def pin_element(src: str, dst: str, sport: int, dport: int, mark: int | None) -> tuple[str, str]:
    """(map name, element text) for one map-mode flow."""
    fam = "6" if ":" in dst else "4"
    key = f"{src} . {dst} . {sport} . {dport}"
    return f"pin{fam}", key if mark is None else f"{key} : {_mark(mark)}"
