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
  (``5-tuple vmap @pin4``); kernel mode's conntrack copy (``copy4``/``copy6``, see
  :func:`render_ct_copy`) jumps to the same chains.

A dead next hop's mark goes into ``released``: connections carrying it have dfagent's bits
cleared on their next packet, and re-record wherever ECMP sends them now.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field

from dfagent.backends.linux.flowhash import FLOW_HASH_MOD, FLOW_HASH_SEED, flow6_hash
from dfagent.config import DEFAULT_FIN_TIMEOUT, DEFAULT_PIN_MAP_SIZE, DEFAULT_PIN_TIMEOUT
from dfagent.core.marks import MarkSpace
from dfagent.core.nexthops import IPNetwork, NextHop

TABLE = "dfagent"
FAMILY = "inet"
T = f"{FAMILY} {TABLE}"
NH_MAP_SIZE = 65536
BASE_CHAINS = ("prerouting", "output", "postrouting")
# raw-priority chains (ahead of conntrack): what dfagent keeps out of the conntrack table
UNTRACK_CHAINS = ("untrack", "untrack_out")
SLOT_CHAIN_KINDS = ("rec", "res", "pin")
SMALL_MAPS = ("nh4", "nh6", "restore", "released", "vip4", "vip6", "vipp4", "vipp6")
DEFAULT_PROTOCOLS = ("tcp",)
# the conntrack copy (render_ct_copy): 5-tuple → pin_<slot>, one map per family
COPY_MAPS = ("copy4", "copy6")


@dataclass(frozen=True)
class RulesetConfig:
    vips: tuple[IPNetwork, ...]
    record: bool = True  # kernel mode: record rt nexthop in ct mark (postrouting)
    pin_maps: bool = False  # map mode: per-flow 5-tuple → next hop maps
    pin_map_size: int = DEFAULT_PIN_MAP_SIZE
    pin_timeout: int = DEFAULT_PIN_TIMEOUT
    space: MarkSpace = field(default_factory=MarkSpace)
    # the router sees only client → server packets (direct server return, asymmetric
    # return paths): pins live in per-flow maps looked up on every packet, no conntrack
    one_direction: bool = False
    notrack: bool = False  # one direction: VIP traffic not tracked at all (raw priority)
    fin_timeout: int = DEFAULT_FIN_TIMEOUT  # one direction: what a pin has left after FIN/RST
    # (VIP, protocols) for VIPs pinning more than TCP; the others pin TCP alone
    protocols: tuple[tuple[IPNetwork, tuple[str, ...]], ...] = ()
    # kernel mode: a copy of the pins in nft maps, so they outlive the conntrack table
    ct_copy: bool = False
    # traffic neither to nor from a VIP is not tracked (raw priority): conntrack is on in
    # this namespace only because of dfagent's ct rules (the agent checks for other users)
    untrack_others: bool = False
    # SYN-flood guard: a VIP flow's entry is made by the client's first ACK, not its SYN
    # (SYNs to and SYN-ACKs from VIPs are not tracked), so spoofed SYNs hold no entry
    syn_untracked: bool = False

    @property
    def copies(self) -> bool:
        """The conntrack copy is in use (kernel mode over conntrack only)."""
        return self.ct_copy and self.record and not self.one_direction and not self.pin_maps

    @property
    def skips_untracked(self) -> bool:
        """Kernel mode over conntrack: an untracked packet (non-VIP, or a guarded SYN) can
        leave the hooked chains at once. Not map mode (a SYN's pin lookup needs no entry)
        nor one direction (its pins are looked up on untracked packets)."""
        untracks = self.untrack_others or self.syn_untracked
        return untracks and self.record and not self.pin_maps and not self.one_direction

    @property
    def pin_chains(self) -> bool:
        """Slots have ``pin_<slot>`` chains (map mode's pins, or the conntrack copy's)."""
        return self.pin_maps or self.copies

    def protocols_of(self, vip: IPNetwork) -> tuple[str, ...]:
        return dict(self.protocols).get(vip, DEFAULT_PROTOCOLS)

    def vip_protocols(self, family: int) -> list[str]:
        """``VIP . proto`` elements of ``vipp4``/``vipp6``: what kernel mode records."""
        vips = self.vips4 if family == 4 else self.vips6
        return [f"{v} . {p}" for v in vips for p in self.protocols_of(v)]

    @property
    def base_chains(self) -> tuple[str, ...]:
        chains = (*BASE_CHAINS, *UNTRACK_CHAINS)
        return (*chains, "raw") if self.one_direction else chains

    @property
    def maps(self) -> set[str]:
        """Every set and map of the table (check() looks for each)."""
        out = set(SMALL_MAPS)
        if self.pin_maps:
            out |= {"pin4", "pin6"}
        if self.one_direction:
            out |= {"flow4", "flow6", "end4", "end6"}
        if self.copies:
            out |= set(COPY_MAPS)
        return out

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
        # VIP . protocol pairs kernel mode records (per-VIP protocols): an ICMP error
        # RELATED to an unpinned flow must not record its own next hop as the flow's pin
        f"add set {T} vipp4 {{ type ipv4_addr . inet_proto; flags interval; }}",
        f"add set {T} vipp6 {{ type ipv6_addr . inet_proto; flags interval; }}",
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
        *(
            # what the untrack chains let pass untracked has nothing for these chains to do
            # (every rule needs an entry): one cheap test instead of each rule's lookups
            f"add rule {T} {c} ct state untracked accept"
            for c in (BASE_CHAINS if cfg.skips_untracked else ())
        ),
        f"flush set {T} vip4",
        f"flush set {T} vip6",
        f"flush set {T} vipp4",
        f"flush set {T} vipp6",
    ]
    if cfg.vips4:
        lines.append(f"add element {T} vip4 {{ {', '.join(map(str, cfg.vips4))} }}")
        lines.append(f"add element {T} vipp4 {{ {', '.join(cfg.vip_protocols(4))} }}")
    if cfg.vips6:
        lines.append(f"add element {T} vip6 {{ {', '.join(map(str, cfg.vips6))} }}")
        lines.append(f"add element {T} vipp6 {{ {', '.join(cfg.vip_protocols(6))} }}")
    ours = f"ct mark and {fld}"
    for chain in ("prerouting", "output"):
        # pins of dead next hops: clear dfagent's bits so the connection re-routes now
        lines.append(
            f"add rule {T} {chain} ct direction original {ours} @released"
            f" ct mark set ct mark and {keep} meta mark set meta mark and {keep}"
        )
        # later packets of a pinned connection: conntrack mark → packet mark → ip rule.
        # ICMP errors about the flow (PMTU: "fragmentation needed", "packet too big") are
        # RELATED to its entry in the original direction, so they follow the pin too
        lines.append(f"add rule {T} {chain} ct direction original {ours} vmap @restore")
        if cfg.pin_maps:
            for ipf, fam in (("ip", "4"), ("ip6", "6")):
                lines.append(
                    f"add rule {T} {chain} {ipf} daddr @vip{fam} ct direction original"
                    f" {ours} == 0 {ipf} saddr . {ipf} daddr . tcp sport . tcp dport"
                    f" vmap @pin{fam}"
                )
                # an ICMP error about a pinned flow that has not copied its pin into the
                # ct mark yet: nft 1.0.6 cannot key the typed pin maps with the quoted
                # inner header (@th payloads are plain integers), but conntrack found the
                # flow from it, and the flow's own tuple is typed
                lines.append(
                    f"add rule {T} {chain} {ipf} daddr @vip{fam} ct state related"
                    f" ct direction original ct protocol tcp {ours} == 0"
                    f" ct original {ipf} saddr . ct original {ipf} daddr"
                    f" . ct original proto-src . ct original proto-dst vmap @pin{fam}"
                )
    if cfg.copies:
        lines += render_ct_copy(cfg)
    if cfg.record and not cfg.one_direction:
        for ipf, fam in _FAMS:
            lines.append(
                f"add rule {T} postrouting ct direction original {ours} == 0"
                f" {ipf} daddr . meta l4proto @vipp{fam} oifname . rt {ipf} nexthop vmap @nh{fam}"
            )
    if cfg.one_direction:
        lines += render_one_direction(cfg)
    else:
        lines += render_direction_probe()
    lines += render_untrack(cfg)
    return "\n".join(lines) + "\n"


def render_untrack(cfg: RulesetConfig) -> list[str]:
    """Raw-priority chains (before conntrack) for what dfagent keeps out of the table.

    ``untrack_others``: dfagent's ``ct`` rules switch conntrack on for the whole namespace;
    a router forwarding statelessly before would now pay an entry per flow (and a full
    table would drop its new flows) for traffic dfagent never pins. Packets neither to
    nor from a VIP are not tracked. Both directions of VIP flows stay tracked: the
    server's answers (source VIP) move the entry to ESTABLISHED.

    ``syn_untracked`` (the SYN-flood guard): a pure SYN to a VIP and a SYN-ACK from one are
    not tracked, so the entry (and the pin) is made by the client's first ACK, which
    conntrack picks up mid-stream (``nf_conntrack_tcp_loose``, checked at start). A spoofed
    source never sends that ACK: a SYN flood holds no entry at all. Cost: the pin is
    taken one round trip later (a next-hop change between SYN and ACK moves that one
    connection, as with plain ECMP).

    Both chains always exist (empty when neither is asked for), so turning either on or
    off is the usual atomic chain replace.
    """
    lines = [
        f"add chain {T} untrack {{ type filter hook prerouting priority raw; policy accept; }}",
        f"add chain {T} untrack_out {{ type filter hook output priority raw; policy accept; }}",
        *(f"flush chain {T} {c}" for c in UNTRACK_CHAINS),
    ]
    for chain in UNTRACK_CHAINS:
        for ipf, fam in _FAMS:
            if cfg.syn_untracked:
                lines.append(
                    f"add rule {T} {chain} {ipf} daddr @vip{fam}"
                    f" tcp flags & (syn|ack) == syn notrack"
                )
                lines.append(
                    f"add rule {T} {chain} {ipf} saddr @vip{fam}"
                    f" tcp flags & (syn|ack) == syn|ack notrack"
                )
            if cfg.untrack_others:
                lines.append(
                    f"add rule {T} {chain} {ipf} daddr != @vip{fam} {ipf} saddr != @vip{fam}"
                    " notrack"
                )
    return lines


_FAMS = (("ip", "4"), ("ip6", "6"))


def render_ct_copy(cfg: RulesetConfig) -> list[str]:
    """Kernel mode's copy of the pins, for when the conntrack table forgets them.

    The pins are conntrack marks: ``conntrack -F`` (or anything that resets the table)
    drops them, the next packet of each connection makes a new entry without a mark
    (``nf_conntrack_tcp_loose``), and the record rule would pin it wherever ECMP sends it
    *now*. The agent's census already dumps every marked entry; each census makes
    ``copy4``/``copy6`` (5-tuple → ``pin_<slot>``) equal to it (ctcopy.CtCopy). A packet of
    a VIP flow whose entry carries no dfagent bits looks it up before postrouting records;
    a hit writes the pin back into the packet and the entry. Whatever direction conntrack
    gave the new entry: a flush between a request and its answer makes the server's answer
    the entry's "original" direction, so the client's packets (to the VIP) are "reply" and
    need their own restore rule. Pure SYNs skip it: a new
    connection reusing a closed one's ports must record afresh, not inherit the old next
    hop. Only connections seen by a census are covered (the window: those newer than the
    last census re-record).
    """
    fld = hexmark(cfg.space.mask)
    lines = []
    for _, fam in _FAMS:
        addr = "ipv4_addr" if fam == "4" else "ipv6_addr"
        lines.append(
            f"add map {T} copy{fam} {{ type {addr} . {addr} . inet_service . inet_service"
            f" : verdict; size {cfg.pin_map_size}; }}"
        )
    for chain in ("prerouting", "output"):
        for ipf, fam in _FAMS:
            # after a flush, conntrack takes the first packet it sees as the original
            # direction: if that was the server's answer, the client's packets are "reply"
            # (only packets to a VIP come from the client, whatever conntrack calls them)
            lines.append(
                f"add rule {T} {chain} {ipf} daddr @vip{fam} ct direction reply"
                f" ct mark and {fld} vmap @restore"
            )
            lines.append(
                f"add rule {T} {chain} {ipf} daddr @vip{fam}"
                f" ct mark and {fld} == 0 tcp flags & (syn|ack) != syn"
                f" {ipf} saddr . {ipf} daddr . tcp sport . tcp dport vmap @copy{fam}"
            )
    return lines


PROBE_PACKETS = "vip_packets"
PROBE_INVALID = "vip_invalid"


def render_direction_probe() -> list[str]:
    """Two named counters telling whether this router sees both directions: TCP packets to
    the VIPs, and those conntrack calls INVALID (nearly all but the SYNs when the replies
    bypass the router). Read by :class:`dfagent.core.direction.DirectionProbe`."""
    lines = [f"add counter {T} {PROBE_PACKETS}", f"add counter {T} {PROBE_INVALID}"]
    for ipf, fam in _FAMS:
        vip = f"{ipf} daddr @vip{fam} meta l4proto tcp"
        lines.append(f'add rule {T} prerouting {vip} counter name "{PROBE_PACKETS}"')
        lines.append(
            f'add rule {T} prerouting {vip} ct state invalid counter name "{PROBE_INVALID}"'
        )
    return lines


def flow_key(ipf: str) -> str:
    """The per-flow key of the one-direction maps, as an nft expression.

    IPv4: the exact 5-tuple (16 bytes). IPv6: nft 1.0.6 cannot linearize a packet-path
    ``update``/``delete`` on a map whose key is longer than 16 bytes (it aborts with
    ``netlink_gen_expr: Assertion `dreg < ctx->reg_low' failed``), so IPv6 flows are keyed
    by a 32-bit jhash of the 5-tuple (:func:`dfagent.backends.linux.flowhash.flow6_hash`
    computes the same in Python for map mode).
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
    pin is a ``flow4``/``flow6`` element (flow key → the next hop's mark bits) looked up on
    *every* packet to a VIP, whatever conntrack thinks of it:

    - a SYN (no ACK) starts a new flow: its old pin (port reuse) is deleted;
    - a hit sets the packet mark (→ ``ip rule fwmark`` → the next hop's table). nft 1.0.6
      cannot OR a looked-up value into the mark, so this one rule writes the whole mark of
      a pinned VIP packet: mark users that run after dfagent's hook keep their bits;
    - a released (dead) next hop's pin is deleted, so the flow re-routes (and re-records);
    - every other packet refreshes the element's timeout (dynset ``update``: the map needs
      ``flags dynamic``; an update never replaces an existing element's value);
    - FIN or RST cuts the pin to ``fin_timeout`` and puts the key in ``end4``/``end6`` so
      the last ACKs do not refresh it again;
    - kernel mode (``record``): postrouting jumps to the chosen next hop's ``rec_<slot>``
      chain for packets without a pin, which writes the pin with its constant mark.

    Maps of their own (not ``pin4``/``pin6``): a map's flags cannot change in place.
    """
    size, fin = cfg.pin_map_size, cfg.fin_timeout
    fld, keep = hexmark(cfg.space.mask), hexmark(~cfg.space.mask & 0xFFFFFFFF)
    ours = f"meta mark and {fld} != 0"
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
                f"add rule {T} {chain} {vip} meta mark and {fld} @released"
                f" delete @flow{fam} {{ {k} : meta mark }} meta mark set meta mark and {keep}",
                f"add rule {T} {chain} {vip} {ours} tcp flags & (fin|rst) == 0"
                f" {k} != @end{fam} update @flow{fam} {{ {k} : meta mark }}",
                f"add rule {T} {chain} {vip} {ours} tcp flags & (fin|rst) != 0"
                f" update @flow{fam} {{ {k} timeout {fin}s : meta mark }}"
                f" update @end{fam} {{ {k} }}",
            ]
    if cfg.record:
        for ipf, fam in _FAMS:
            lines.append(
                f"add rule {T} postrouting {ipf} daddr @vip{fam} meta l4proto tcp"
                f" meta mark and {fld} == 0 oifname . rt {ipf} nexthop vmap @nh{fam}"
            )
    return lines


def render_slot_chains(
    space: MarkSpace,
    slot: int,
    pin_maps: bool,
    live: bool = True,
    one_direction: bool = False,
    family: int = 4,
) -> str:
    """Create (or refill) the chains of one slot; ``live=False`` leaves them empty, so the
    pins and records that still jump to them do nothing (a dead next hop's). With
    ``one_direction`` the record writes the flow's pin (its ``family``'s flow map)."""
    mark, keep = hexmark(space.mark(slot)), hexmark(~space.mask & 0xFFFFFFFF)
    ipf = "ip" if family == 4 else "ip6"
    record = (
        f"update @flow{family} {{ {flow_key(ipf)} : {mark} }}"
        if one_direction
        else f"ct mark set ct mark and {keep} or {mark}"
    )
    body = {
        "rec": record,
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


def flow_element(
    space: MarkSpace, src: str, dst: str, sport: int, dport: int, slot: int | None
) -> tuple[str, str]:
    """(map name, element text) for one one-direction flow pin (``flow4``/``flow6``)."""
    if ":" in dst:
        key = str(flow6_hash(src, dst, sport, dport))
        name = "flow6"
    else:
        key, name = f"{src} . {dst} . {sport} . {dport}", "flow4"
    return name, key if slot is None else f"{key} : {hexmark(space.mark(slot))}"


def verdict_slot(value: object) -> int | None:
    """The slot of a verdict-map value as nft's JSON gives it (``{"jump": {"target": …}}``)."""
    if isinstance(value, dict):
        jump = value.get("jump") or value.get("goto")
        if isinstance(jump, dict):
            return slot_of_chain(str(jump.get("target", "")))
    return None
