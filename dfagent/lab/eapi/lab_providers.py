"""The lab flavour's routing answers: from the router the switch runs on, not test data.

* `show ip|ipv6 route`: the kernel's main table (what FRR installed), longest match. The
  router's ``ethN`` are the switch's ``EthernetN``. An IPv6 BGP route's link-local gateway is
  named by the global next hop of the same BGP path (FRR's ``show bgp ipv6 unicast PREFIX
  json``), as EOS shows a route learned over a global next hop: a DirectFlow pin needs it.
* `show load-balance destination`: the kernel's own choice for the 5-tuple, one
  RTM_GETROUTE with the ingress interface, protocol and ports (with
  ``fib_multipath_hash_policy`` 3 it answers what forwarding picks for that flow).
* `show ip bgp`, router id, ASN: still the test switch's static data (not FRR yet).
"""

from __future__ import annotations

import ipaddress
import json
import re
import socket
import subprocess
from collections.abc import Sequence
from typing import Any

from dfagent.backends.linux.rtnl import route_get_oif
from dfagent.lab.eapi.directflow import IPAddress, IPNetwork
from dfagent.lab.eapi.providers import BgpEntry, FiveTuple, Route, StaticProviders, Via

_LINUX_IF = re.compile(r"^eth(\d+)$")
_EOS_IF = re.compile(r"^Ethernet(\d+)$")
_ROUTE_TYPES = {"bgp": "eBGP", "static": "static", "kernel": "connected", "boot": "static"}


def eos_interface(ifname: str) -> str:
    """The router's ethN is the switch's EthernetN; other names stay as they are."""
    m = _LINUX_IF.match(ifname)
    return f"Ethernet{m.group(1)}" if m else ifname


def linux_interface(name: str) -> str:
    m = _EOS_IF.match(name)
    return f"eth{m.group(1)}" if m else name


class LinuxProviders:
    """:class:`Providers` reading the kernel (and FRR for IPv6 next-hop names)."""

    def __init__(self, static: StaticProviders, vtysh: Sequence[str] | None = None) -> None:
        self.static = static  # BGP answers, router id, ASN
        self.vtysh = list(vtysh) if vtysh else None

    # ── routes ──────────────────────────────────────────────────────────────────────
    def _ip_json(self, argv: list[str]) -> list[dict[str, Any]]:
        r = subprocess.run(["ip", "-j", *argv], capture_output=True, text=True, timeout=10)
        return list(json.loads(r.stdout or "[]")) if r.returncode == 0 else []

    def route(self, target: IPAddress | IPNetwork) -> Route | None:
        net = ipaddress.ip_network(target)
        v = net.version
        best: tuple[IPNetwork, dict[str, Any]] | None = None
        for entry in self._ip_json([f"-{v}", "route", "show", "table", "main", "match",
                                    str(net)]):  # fmt: skip
            prefix = _prefix(entry.get("dst", ""), v)
            if prefix is None or prefix.prefixlen > net.prefixlen:
                continue
            if best is None or prefix.prefixlen > best[0].prefixlen:
                best = (prefix, entry)
        return None if best is None else self._route(*best)

    def routes(self, version: int) -> list[Route]:
        out = []
        for entry in self._ip_json([f"-{version}", "route", "show", "table", "main"]):
            prefix = _prefix(entry.get("dst", ""), version)
            if prefix is not None:
                out.append(self._route(prefix, entry))
        return out

    def _route(self, prefix: IPNetwork, entry: dict[str, Any]) -> Route:
        hops = entry.get("nexthops") or [entry]
        names = self._globals(prefix) if prefix.version == 6 else {}
        unspecified = ipaddress.ip_address("::" if prefix.version == 6 else "0.0.0.0")
        vias = []
        for hop in hops:
            gw = hop.get("gateway")
            addr = ipaddress.ip_address(names.get(gw, gw)) if gw else unspecified
            vias.append(Via(addr, eos_interface(str(hop.get("dev", "")))))
        kind = _ROUTE_TYPES.get(str(entry.get("protocol", "")), "static")
        return Route(prefix=prefix, vias=tuple(vias), route_type=kind,
                     preference=200 if kind == "eBGP" else 1 if kind == "static" else 0,
                     metric=int(entry.get("metric", 0)))  # fmt: skip

    def _globals(self, prefix: IPNetwork) -> dict[str, str]:
        """Link-local next hop → the global one of the same BGP path (FRR)."""
        if self.vtysh is None:
            return {}
        argv = [*self.vtysh, "-c", f"show bgp ipv6 unicast {prefix} json"]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        try:
            paths = json.loads(r.stdout or "{}").get("paths", [])
        except json.JSONDecodeError:
            return {}
        out = {}
        for path in paths:
            hops = {h.get("scope"): h.get("ip") for h in path.get("nexthops", [])}
            if hops.get("link-local") and hops.get("global"):
                out[str(hops["link-local"])] = str(hops["global"])
        return out

    # ── the hash ────────────────────────────────────────────────────────────────────
    def egress(self, flow: FiveTuple) -> str | None:
        try:
            iif = socket.if_nametoindex(linux_interface(flow.ingress_interface))
            oif = route_get_oif(str(flow.src), str(flow.dst), iif, flow.proto, flow.sport,
                                flow.dport)  # fmt: skip
            return None if oif is None else eos_interface(socket.if_indextoname(oif))
        except OSError:
            return None

    # ── BGP: the static data ────────────────────────────────────────────────────────
    def bgp(self, target: IPAddress | IPNetwork) -> BgpEntry | None:
        return self.static.bgp(target)

    def bgp_all(self, version: int) -> list[BgpEntry]:
        return self.static.bgp_all(version)

    def router_id(self) -> str:
        return self.static.router_id()

    def local_asn(self) -> int:
        return self.static.local_asn()


def _prefix(dst: str, version: int) -> IPNetwork | None:
    if dst == "default":
        return ipaddress.ip_network("0.0.0.0/0" if version == 4 else "::/0")
    try:
        net = ipaddress.ip_network(dst, strict=False)
    except ValueError:
        return None
    return net if net.version == version else None
