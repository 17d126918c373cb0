"""The nftables ruleset dfagent owns, rendered as nft scripts (pure; no I/O).

Everything lives in ``table inet dfagent``. :func:`render_base` gives a script that creates
the table if needed and replaces the hooked chains and VIP sets atomically (one transaction)
while leaving map *contents* alone, so a restart over a running datapath loses no pin.

dfagent writes only the bits of its mark field (:class:`dfagent.core.marks.MarkSpace`). nft
1.0.6 cannot OR one register into another (``meta mark set meta mark or ct mark`` is
rejected: "Right hand side of binary operation must be constant"), so every value is a
constant in a small chain per next-hop slot, reached through verdict maps:

* ``rec_<slot>``: ``ct mark set ct mark and ~FIELD or MARK`` — postrouting records the next
  hop the route chose (``oifname . rt ip nexthop vmap @nh4``);
* ``res_<slot>``: ``meta mark set meta mark and ~FIELD or MARK`` — prerouting/output restore
  it on later packets (``ct mark and FIELD vmap @restore``), and the ``ip rule`` matches
  ``fwmark MARK/FIELD``;
* ``pin_<slot>`` (map mode): both, for a flow pinned from a mirrored SYN
  (``5-tuple vmap @pin4``).

A dead next hop's mark goes into ``released``: connections carrying it have dfagent's bits
cleared on their next packet, and re-record wherever ECMP sends them now.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field

from dfagent.core.marks import MarkSpace
from dfagent.core.nexthops import IPNetwork, NextHop

TABLE = "dfagent"
FAMILY = "inet"
T = f"{FAMILY} {TABLE}"
NH_MAP_SIZE = 65536
DEFAULT_PIN_MAP_SIZE = 2_000_000
DEFAULT_PIN_TIMEOUT = 300
BASE_CHAINS = ("prerouting", "output", "postrouting")
SLOT_CHAIN_KINDS = ("rec", "res", "pin")
SMALL_MAPS = ("nh4", "nh6", "restore", "released", "vip4", "vip6")


@dataclass(frozen=True)
class RulesetConfig:
    vips: tuple[IPNetwork, ...]
    record: bool = True  # kernel mode: record rt nexthop in ct mark (postrouting)
    pin_maps: bool = False  # map mode: per-flow 5-tuple → next hop maps
    pin_map_size: int = DEFAULT_PIN_MAP_SIZE
    pin_timeout: int = DEFAULT_PIN_TIMEOUT
    space: MarkSpace = field(default_factory=MarkSpace)

    @property
    def vips4(self) -> list[IPNetwork]:
        return sorted((v for v in self.vips if v.version == 4), key=str)

    @property
    def vips6(self) -> list[IPNetwork]:
        return sorted((v for v in self.vips if v.version == 6), key=str)


def hexmark(m: int) -> str:
    return f"0x{m:08x}"


def chain_name(kind: str, slot: int) -> str:
    return f"{kind}_{slot:08x}"


def slot_of_chain(name: str) -> int | None:
    """``rec_0dfa0003`` → 0x0dfa0003 (None for other names)."""
    kind, _, tail = name.partition("_")
    if kind not in SLOT_CHAIN_KINDS or len(tail) != 8:
        return None
    try:
        return int(tail, 16)
    except ValueError:
        return None


def render_base(cfg: RulesetConfig) -> str:
    """The script that (re)installs dfagent's table, sets, maps and hooked chains."""
    sp = cfg.space
    fld, keep = hexmark(sp.mask), hexmark(~sp.mask & 0xFFFFFFFF)
    lines = [
        f"add table {T}",
        f"add map {T} nh4 {{ type ifname . ipv4_addr : verdict; size {NH_MAP_SIZE}; }}",
        f"add map {T} nh6 {{ type ifname . ipv6_addr : verdict; size {NH_MAP_SIZE}; }}",
        f"add map {T} restore {{ type mark : verdict; size {NH_MAP_SIZE}; }}",
        f"add set {T} released {{ type mark; size {NH_MAP_SIZE}; }}",
        f"add set {T} vip4 {{ type ipv4_addr; flags interval; }}",
        f"add set {T} vip6 {{ type ipv6_addr; flags interval; }}",
    ]
    if cfg.pin_maps:
        for fam, addr in (("4", "ipv4_addr"), ("6", "ipv6_addr")):
            lines.append(
                f"add map {T} pin{fam} {{ type {addr} . {addr} . inet_service . inet_service"
                f" : verdict; size {cfg.pin_map_size}; flags timeout;"
                f" timeout {cfg.pin_timeout}s; }}"
            )
    lines += [
        f"add chain {T} prerouting"
        " { type filter hook prerouting priority mangle; policy accept; }",
        f"add chain {T} output {{ type route hook output priority mangle; policy accept; }}",
        f"add chain {T} postrouting"
        " { type filter hook postrouting priority mangle; policy accept; }",
        *(f"flush chain {T} {c}" for c in BASE_CHAINS),
        f"flush set {T} vip4",
        f"flush set {T} vip6",
    ]
    if cfg.vips4:
        lines.append(f"add element {T} vip4 {{ {', '.join(map(str, cfg.vips4))} }}")
    if cfg.vips6:
        lines.append(f"add element {T} vip6 {{ {', '.join(map(str, cfg.vips6))} }}")
    ours = f"ct mark and {fld}"
    for chain in ("prerouting", "output"):
        # pins of dead next hops: clear dfagent's bits so the connection re-routes now
        lines.append(
            f"add rule {T} {chain} ct direction original {ours} @released"
            f" ct mark set ct mark and {keep} meta mark set meta mark and {keep}"
        )
        # later packets of a pinned connection: conntrack mark → packet mark → ip rule
        lines.append(f"add rule {T} {chain} ct direction original {ours} vmap @restore")
        if cfg.pin_maps:
            for ipf, fam in (("ip", "4"), ("ip6", "6")):
                lines.append(
                    f"add rule {T} {chain} {ipf} daddr @vip{fam} ct direction original"
                    f" {ours} == 0 {ipf} saddr . {ipf} daddr . tcp sport . tcp dport"
                    f" vmap @pin{fam}"
                )
    if cfg.record:
        for ipf, fam in (("ip", "4"), ("ip6", "6")):
            lines.append(
                f"add rule {T} postrouting ct direction original {ours} == 0"
                f" {ipf} daddr @vip{fam} oifname . rt {ipf} nexthop vmap @nh{fam}"
            )
    return "\n".join(lines) + "\n"


def render_slot_chains(space: MarkSpace, slot: int, pin_maps: bool, live: bool = True) -> str:
    """Create (or refill) the chains of one slot; ``live=False`` leaves them empty, so the
    pins and records that still jump to them do nothing (a dead next hop's)."""
    mark, keep = hexmark(space.mark(slot)), hexmark(~space.mask & 0xFFFFFFFF)
    body = {
        "rec": f"ct mark set ct mark and {keep} or {mark}",
        "res": f"meta mark set meta mark and {keep} or {mark}",
        "pin": f"meta mark set meta mark and {keep} or {mark} ct mark set ct mark and {keep}"
        f" or {mark}",
    }
    out = []
    for kind in SLOT_CHAIN_KINDS:
        if kind == "pin" and not pin_maps:
            continue
        name = chain_name(kind, slot)
        out += [f"add chain {T} {name}", f"flush chain {T} {name}"]
        if live:
            out.append(f"add rule {T} {name} {body[kind]}")
    return "\n".join(out) + "\n"


def render_delete_slot_chains(slot: int, pin_maps: bool) -> str:
    kinds = [k for k in SLOT_CHAIN_KINDS if pin_maps or k != "pin"]
    return "".join(f"delete chain {T} {chain_name(k, slot)}\n" for k in kinds)


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


def nh_element(key: str, slot: int) -> str:
    return f"{key} : jump {chain_name('rec', slot)}"


def restore_element(space: MarkSpace, slot: int) -> str:
    return f"{hexmark(space.mark(slot))} : jump {chain_name('res', slot)}"


def render_elements(verb: str, mapname: str, items: Iterable[str]) -> str:
    """``add|delete element`` for pre-rendered elements (``key : value`` or ``key``)."""
    body = ", ".join(items)
    return f"{verb} element {T} {mapname} {{ {body} }}\n" if body else ""


def pin_element(src: str, dst: str, sport: int, dport: int, slot: int | None) -> tuple[str, str]:
    """(map name, element text) for one map-mode flow (``slot`` None: the key alone)."""
    fam = "6" if ":" in dst else "4"
    key = f"{src} . {dst} . {sport} . {dport}"
    return f"pin{fam}", key if slot is None else f"{key} : jump {chain_name('pin', slot)}"


def verdict_slot(value: object) -> int | None:
    """The slot of a verdict-map value as nft's JSON gives it (``{"jump": {"target": …}}``)."""
    if isinstance(value, dict):
        jump = value.get("jump") or value.get("goto")
        if isinstance(jump, dict):
            return slot_of_chain(str(jump.get("target", "")))
    return None
