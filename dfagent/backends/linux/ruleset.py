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
DEFAULT_FIN_TIMEOUT = 30


@dataclass(frozen=True)
class RulesetConfig:
    vips: tuple[IPNetwork, ...]
    record: bool = True  # kernel mode: record rt nexthop in ct mark (postrouting)
    pin_maps: bool = False  # map mode: per-flow 5-tuple → mark maps
    pin_map_size: int = DEFAULT_PIN_MAP_SIZE
    pin_timeout: int = DEFAULT_PIN_TIMEOUT
    # the router sees only client → server packets (direct server return, asymmetric
    # return paths): pins live in per-flow maps looked up on every packet, no conntrack
    one_direction: bool = False
    notrack: bool = False  # one direction: VIP traffic not tracked at all (raw priority)
    fin_timeout: int = DEFAULT_FIN_TIMEOUT  # one direction: what a pin has left after FIN/RST

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
    if cfg.record and not cfg.one_direction:
        for ipf, fam in (("ip", "4"), ("ip6", "6")):
            lines.append(
                f"add rule {T} postrouting ct direction original ct mark 0 {ipf} daddr @vip{fam}"
                f" ct mark set oifname . rt {ipf} nexthop map @nh{fam}"
            )
    if cfg.one_direction:
        lines += render_one_direction(cfg)
    else:
        lines += render_direction_probe()
    return "\n".join(lines) + "\n"


PROBE_PACKETS = "vip_packets"
PROBE_INVALID = "vip_invalid"


def render_direction_probe() -> list[str]:
    """Two named counters telling whether this router sees both directions: forwarded TCP
    packets to the VIPs, and those conntrack calls INVALID (nearly all but the SYNs when
    the replies bypass the router). Read by :class:`dfagent.core.direction.DirectionProbe`.
    Counter objects keep their values across a restart's chain flush."""
    lines = [f"add counter {T} {PROBE_PACKETS}", f"add counter {T} {PROBE_INVALID}"]
    for ipf, fam in _FAMS:
        vip = f"{ipf} daddr @vip{fam} meta l4proto tcp"
        lines.append(f'add rule {T} prerouting {vip} counter name "{PROBE_PACKETS}"')
        lines.append(
            f'add rule {T} prerouting {vip} ct state invalid counter name "{PROBE_INVALID}"'
        )
    return lines


FLOW_HASH_SEED = 0x0DFA
FLOW_HASH_MOD = 0xFFFFFFFF


def flow_key(ipf: str) -> str:
    """The per-flow key of the one-direction maps, as an nft expression.

    IPv4: the exact 5-tuple (16 bytes). IPv6: nft 1.0.6 cannot linearize a packet-path
    ``update``/``delete`` on a map whose key is longer than 16 bytes (it aborts with
    ``netlink_gen_expr: Assertion `dreg < ctx->reg_low' failed``; the 36-byte IPv6 5-tuple,
    even ``ip6 saddr . tcp sport``, hits it), so IPv6 flows are keyed by a 32-bit jhash of
    the 5-tuple (:func:`dfagent.backends.linux.flowhash.flow6_hash` computes the same in
    Python for map mode).
    """
    tup = f"{ipf} saddr . {ipf} daddr . tcp sport . tcp dport"
    if ipf == "ip":
        return tup
    return f"jhash {tup} mod {FLOW_HASH_MOD} seed 0x{FLOW_HASH_SEED:x}"


def render_one_direction(cfg: RulesetConfig) -> list[str]:
    """Pinning without conntrack, for routers that see only the client → server half.

    Conntrack cannot follow such a connection: after the SYN (entry SYN_SENT, unreplied,
    120 s) every packet is INVALID, so neither a conntrack mark nor a rule that needs
    ``ct direction original`` ever applies (docs/kernel-mode.md, "One direction"). Here the
    pin is a ``flow4``/``flow6`` element (flow key → next-hop mark) looked up on *every*
    packet to a VIP, whatever conntrack thinks of it:

    - a SYN (no ACK) starts a new flow: its old pin (port reuse) is deleted;
    - a hit sets the packet mark (→ ``ip rule fwmark`` → the next hop's table);
    - a released (dead) next hop's pin is deleted, so the flow re-routes (and re-records);
    - every other packet refreshes the element's timeout (dynset ``update``: the map needs
      ``flags dynamic``; an update never replaces an existing element's value);
    - FIN or RST cuts the pin to ``fin_timeout`` and puts the key in ``end4``/``end6`` so
      the last ACKs do not refresh it again;
    - kernel mode (``record``): postrouting writes the route's choice for packets without a
      pin, ``oifname . rt ip nexthop map @nh4`` as in the conntrack-mark variant.

    Maps of their own (not ``pin4``/``pin6``): a map's flags cannot change in place.
    """
    size, fin = cfg.pin_map_size, cfg.fin_timeout
    ours = f"meta mark and {_mark(MARK_MASK)} == {_mark(MARK_BASE)}"
    lines = []
    for ipf, fam in _FAMS:
        key_type = f"typeof {flow_key(ipf)}"
        lines += [
            f"add map {T} flow{fam} {{ {key_type} : meta mark; size {size};"
            f" flags dynamic,timeout; timeout {cfg.pin_timeout}s; }}",
            f"add set {T} end{fam} {{ {key_type}; size {size};"
            f" flags dynamic,timeout; timeout {fin}s; }}",
        ]
    lines += [
        f"add chain {T} raw {{ type filter hook prerouting priority raw; policy accept; }}",
        f"flush chain {T} raw",
    ]
    if cfg.notrack:
        lines += [f"add rule {T} raw {ipf} daddr @vip{fam} notrack" for ipf, fam in _FAMS]
    for chain in ("prerouting", "output"):
        for ipf, fam in _FAMS:
            k, vip = flow_key(ipf), f"{ipf} daddr @vip{fam} meta l4proto tcp"
            lines += [
                f"add rule {T} {chain} {vip} tcp flags & (syn|ack) == syn"
                f" delete @flow{fam} {{ {k} : meta mark }}",
                f"add rule {T} {chain} {vip} tcp flags & (syn|ack) == syn"
                f" delete @end{fam} {{ {k} }}",
                f"add rule {T} {chain} {vip} meta mark set {k} map @flow{fam}",
                f"add rule {T} {chain} {vip} meta mark @released"
                f" delete @flow{fam} {{ {k} : meta mark }} meta mark set 0",
                f"add rule {T} {chain} {vip} {ours} tcp flags & (fin|rst) == 0"
                f" {k} != @end{fam} update @flow{fam} {{ {k} : meta mark }}",
                f"add rule {T} {chain} {vip} {ours} tcp flags & (fin|rst) != 0"
                f" update @flow{fam} {{ {k} timeout {fin}s : meta mark }}"
                f" update @end{fam} {{ {k} }}",
            ]
    if cfg.record:
        for ipf, fam in _FAMS:
            lines.append(
                f"add rule {T} postrouting {ipf} daddr @vip{fam} meta l4proto tcp meta mark 0"
                f" meta mark set oifname . rt {ipf} nexthop map @nh{fam}"
                f" update @flow{fam} {{ {flow_key(ipf)} : meta mark }}"
            )
    return lines


_FAMS = (("ip", "4"), ("ip6", "6"))


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


def pin_element(
    src: str, dst: str, sport: int, dport: int, mark: int | None, prefix: str = "pin"
) -> tuple[str, str]:
    """(map name, element text) for one map-mode flow (``prefix="flow"``: one direction)."""
    fam = "6" if ":" in dst else "4"
    key = f"{src} . {dst} . {sport} . {dport}"
    return f"{prefix}{fam}", key if mark is None else f"{key} : {_mark(mark)}"
