"""Graceful drain on EOS as configuration lines (pure), and reading it back.

As operators do it (field notes): a prefix-list holds the drained servers' next hops; an
inbound route-map on the server peers gives paths via those next hops local-preference 1 and
lets everything else through unchanged (the permit-all entry), so the drained server's paths
leave the ECMP set while its BGP session stays up. Undrain removes the next hop's entry; with
the last one gone, the route-map and its use on the peers are removed too, leaving the
switch's configuration as it was before the first drain.

Prefix-list entries are ``seq 10, 20, …`` per next hop; :func:`drained_from_config` reads
them back from ``show running-config`` (text), which real EOS and the test switch both answer.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

SEQ_STEP = 10
RM_DRAIN_SEQ = 10
RM_PERMIT_SEQ = 20


@dataclass(frozen=True)
class DrainSpec:
    asn: int
    neighbors: tuple[str, ...]  # peer groups or addresses of the servers
    route_map: str = "DFAGENT-DRAIN"
    prefix_list_v4: str = "DRAIN4"
    prefix_list_v6: str = "DRAIN6"

    def plist(self, family: int) -> str:
        return self.prefix_list_v4 if family == 4 else self.prefix_list_v6


def _kw(family: int) -> str:
    return "ip" if family == 4 else "ipv6"


def _host(addr: str) -> tuple[int, str]:
    ip = ipaddress.ip_address(addr)
    return ip.version, f"{ip}/{ip.max_prefixlen}"


def _families(addrs: Iterable[str]) -> set[int]:
    return {ipaddress.ip_address(a).version for a in addrs}


def drain_lines(spec: DrainSpec, current: Mapping[str, int], addresses: Iterable[str]) -> list[str]:
    """Lines that add ``addresses`` (next hops) to the drain; ``current`` is what is drained
    now (address → seq). Empty when they all are already."""
    lines: list[str] = []
    seqs = dict(current)
    for addr in addresses:
        fam, prefix = _host(addr)
        key = str(ipaddress.ip_address(addr))
        if key in seqs:
            continue
        used = {s for a, s in seqs.items() if ipaddress.ip_address(a).version == fam}
        seq = max(used, default=0) + SEQ_STEP
        seqs[key] = seq
        lines.append(f"{_kw(fam)} prefix-list {spec.plist(fam)} seq {seq} permit {prefix}")
    if lines:
        lines += route_map_lines(spec, _families(current), _families(seqs))
    return lines


def route_map_lines(spec: DrainSpec, before: set[int], after: set[int]) -> list[str]:
    """The route-map entries for the families drained ``after`` (one ``set local-preference
    1`` entry per family, seq 10 for v4 and 11 for v6, then permit-all at 20) and its use on
    the server peers. Entries are edited in place, never the whole map removed and written
    again: peers would meet a missing route-map in between."""
    lines = []
    for fam in sorted(after):
        lines += [
            f"route-map {spec.route_map} permit {RM_DRAIN_SEQ + (fam == 6)}",
            f"match {_kw(fam)} next-hop prefix-list {spec.plist(fam)}",
            "set local-preference 1",
            "exit",
        ]
    lines += [f"no route-map {spec.route_map} permit {RM_DRAIN_SEQ + (f == 6)}"
              for f in sorted(before - after)]  # fmt: skip
    if not before:
        lines += [f"route-map {spec.route_map} permit {RM_PERMIT_SEQ}", "exit"]
        lines.append(f"router bgp {spec.asn}")
        lines += [f"neighbor {n} route-map {spec.route_map} in" for n in spec.neighbors]
        lines.append("exit")
    return lines


def undrain_lines(
    spec: DrainSpec, current: Mapping[str, int], addresses: Iterable[str]
) -> list[str]:
    lines: list[str] = []
    left = dict(current)
    for addr in addresses:
        key = str(ipaddress.ip_address(addr))
        if key not in left:
            continue
        fam, prefix = _host(key)
        lines.append(f"no {_kw(fam)} prefix-list {spec.plist(fam)} seq {left.pop(key)}")
    if not lines:
        return []
    if left:  # others stay drained: the route-map keeps the families still in use
        return lines + route_map_lines(spec, _families(current), _families(left))
    # the last one: the peers lose the route-map first, then it goes
    lines.append(f"router bgp {spec.asn}")
    lines += [f"no neighbor {n} route-map {spec.route_map} in" for n in spec.neighbors]
    lines += ["exit", f"no route-map {spec.route_map}"]
    return lines


def drained_from_config(spec: DrainSpec, running_config: str) -> dict[str, int]:
    """address → seq of the drain prefix-lists' host entries in ``show running-config``
    text, written on one line (``ip prefix-list P seq 10 permit A/32``) or as a block
    (``ip prefix-list P`` then ``   seq 10 permit A/32``), as EOS versions differ."""
    out: dict[str, int] = {}
    block: str | None = None
    for raw in running_config.splitlines():
        line = raw.strip()
        words = line.split()
        entry: list[str] = []
        if len(words) >= 3 and words[0] in ("ip", "ipv6") and words[1] == "prefix-list":
            name = words[2]
            fam = 4 if words[0] == "ip" else 6
            block = name if name == spec.plist(fam) and len(words) == 3 else None
            if name == spec.plist(fam):
                entry = words[3:]
        elif block is not None and raw[:1].isspace():
            entry = words
        else:
            block = None
        if len(entry) == 4 and entry[0] == "seq" and entry[2] == "permit" and entry[1].isdigit():
            try:
                net = ipaddress.ip_network(entry[3], strict=False)
            except ValueError:
                continue
            if net.prefixlen == net.max_prefixlen:
                out[str(net.network_address)] = int(entry[1])
    return out


def nexthop_addresses(addresses: Sequence[str]) -> list[str]:
    """Plain addresses (``ADDR%IFNAME`` → ``ADDR``); an interface alone cannot be drained."""
    out = []
    for a in addresses:
        addr = a.partition("%")[0]
        if addr:
            out.append(str(ipaddress.ip_address(addr)))
    return out
