"""`show …` commands of the test switch, in eAPI's json and text formats.

JSON shapes follow what EOS returns (field notes; Arista's DirectFlow Assist test data for
`show directflow flows|detail`). Commands without a JSON model on EOS (`show
running-config`, anything piped) answer 1003 "unconverted command" in json format, which is
what makes pyeapi's `Node.enable()` retry them as text.
"""

from __future__ import annotations

import ipaddress
import re
from typing import TYPE_CHECKING, Any

from dfagent.lab.eapi.directflow import ETH_IPV4, ETH_IPV6, FlowEntry
from dfagent.lab.eapi.providers import BgpEntry, FiveTuple, Route
from dfagent.lab.eapi.runconfig import ethertype_word, include, proto_word, section
from dfagent.lab.eapi.tokens import CommandError, Tokens, incomplete

if TYPE_CHECKING:
    from dfagent.lab.eapi.modes import Session

Result = dict[str, Any]


def unconverted() -> CommandError:
    return CommandError(1003, "This is an unconverted command")


def run(s: Session, t: Tokens, pipe: list[str]) -> Result:
    """One `show` command (the word `show` already read); pipe: the words after `|`."""
    s.state.flows.expire()
    start = t.pos
    word = t.keyword(
        "version",
        "hostname",
        "directflow",
        "ip",
        "ipv6",
        "load-balance",
        "running-config",
        "startup-config",
    )
    if word in ("running-config", "startup-config"):
        return _config(s, t, word, pipe)
    if pipe:
        if not s.text:
            raise unconverted()
        t.pos = start
        return {"output": _filter(t, pipe, run(s, t, [])["output"])}
    if word == "version":
        t.end()
        return _version(s)
    if word == "hostname":
        t.end()
        name = s.state.hostname
        if s.text:
            return {"output": f"Hostname: {name}\nFQDN:     {name}\n"}
        return {"hostname": name, "fqdn": name}
    if word == "directflow":
        what = t.keyword("flows", "detail")
        t.end()
        return _directflow(s, detail=what == "detail")
    if word == "load-balance":
        return _load_balance(s, t)
    version = 4 if word == "ip" else 6
    what = t.keyword("route", "bgp")
    target: Any = None
    if t:
        raw = t.peek() or ""
        target = t.prefix(version, strict=False) if "/" in raw else t.address(version)
    t.end()
    if what == "route":
        return _routes(s, version, target)
    return _bgp(s, version, target)


def _filter(t: Tokens, pipe: list[str], text: str) -> str:
    f = Tokens(pipe, t.auto)
    kind = f.keyword("section", "include", "grep")
    if not f:
        raise incomplete()
    regex = " ".join(pipe[1:])
    try:
        return section(text, regex) if kind == "section" else include(text, regex)
    except re.error:
        raise CommandError(1002, f"Invalid input (at token 1: {pipe[1]!r})") from None


def _config(s: Session, t: Tokens, word: str, pipe: list[str]) -> Result:
    if not s.privileged:
        raise CommandError(1002, "Invalid input (privileged mode required)")
    regex = None
    if word == "running-config":
        t.accept("all")  # defaults are not printed either way here
        if t.accept("section"):
            if not t:
                raise incomplete()
            regex = " ".join(t.words[t.pos :])
            t.pos = len(t.words)
    t.end()
    if not s.text:
        raise unconverted()
    text = s.state.running_config() if word == "running-config" else s.state.startup_config
    if regex is not None:
        try:
            text = section(text, regex)
        except re.error:
            raise CommandError(1002, f"Invalid input (at token 3: {regex!r})") from None
    if pipe:
        text = _filter(t, pipe, text)
    return {"output": text}


def _version(s: Session) -> Result:
    v = s.state.version
    uptime = s.state.clock.now() - s.state.booted
    if s.text:
        return {
            "output": (
                f"Arista {v.model}\nHardware version:    {v.hardware_revision}\n"
                f"Serial number:       {v.serial}\nSystem MAC address:  {v.mac}\n\n"
                f"Software image version: {v.version}\nArchitecture:           "
                f"{v.architecture}\nUptime:                 {int(uptime)} seconds\n"
            )
        }
    return {
        "mfgName": "Arista",
        "modelName": v.model,
        "hardwareRevision": v.hardware_revision,
        "serialNumber": v.serial,
        "systemMacAddress": v.mac,
        "hwMacAddress": v.mac,
        "configMacAddress": "00:00:00:00:00:00",
        "version": v.version,
        "architecture": v.architecture,
        "internalVersion": f"{v.version}-0.dfagent",
        "internalBuildId": "00000000-0000-0000-0000-000000000000",
        "imageFormatVersion": "1.0",
        "bootupTimestamp": 1700000000.0,
        "uptime": round(uptime, 2),
        "memTotal": 8099732,
        "memFree": 6297212,
        "isIntlVersion": False,
    }


# -- DirectFlow --------------------------------------------------------------------------


def _mask(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> dict[str, str]:
    return {"ip": str(net.network_address), "mask": str(net.netmask)}


def flow_json(entry: FlowEntry, bridge_mac: str) -> Result:
    c = entry.config
    match: Result = {
        "inInterfaces": list(c.in_interfaces),
        "tcpSyn": False,
        "tcpAck": False,
        "tcpFin": False,
        "tcpRst": False,
        "tcpPsh": False,
        "tcpUrg": False,
        "unknownL2V4MulticastAddress": False,
        "unknownL3V4MulticastAddress": False,
    }
    if c.ethertype is not None:
        match["ethType"] = c.ethertype
        match["ethTypeMask"] = 0xFFFF
    for key, net in (("Src", c.src), ("Dst", c.dst)):
        if net is not None:
            match[("ip" if net.version == 4 else "ipv6") + key] = _mask(net)
    if c.ip_proto is not None:
        match["ipProto"] = c.ip_proto
    if c.sport is not None:
        match["ipPortSrc"] = c.sport
    if c.dport is not None:
        match["ipPortDst"] = c.dport
    action: Result = {
        "outputNormal": False,
        "outputLocal": False,
        "outputDrop": c.drop,
        "outputAll": False,
        "outputController": False,
        "outputFlood": False,
        "loopback": False,
        "outInterfaces": list(c.out_interfaces),
        "egrMirrorInterfaces": [],
        "ingrMirrorInterfaces": [],
    }
    if c.nexthop is not None:
        action["outputNexthop"] = str(c.nexthop)
    return {
        "name": c.name,
        "priority": c.priority,
        "matchPackets": entry.match_packets,
        "matchBytes": entry.match_bytes,
        "bridgeMacAddr": bridge_mac,
        "idleTimeout": c.idle_timeout,
        "hardTimeout": c.hard_timeout,
        "persistent": c.persistent,
        "match": match,
        "action": action,
    }


def _flow_text(entry: FlowEntry) -> str:
    c = entry.config
    lines = [
        f"Flow {c.name}:",
        f"  persistent: {c.persistent}",
        f"  priority: {c.priority}",
        "  priorityGroupType: default",
        "  tableType: ifp",
        f"  hard timeout: {c.hard_timeout}",
        f"  idle timeout: {c.idle_timeout}",
        "  match:",
    ]
    if c.in_interfaces:
        lines.append("    ingress interfaces: " + ", ".join(c.in_interfaces))
    if c.ethertype is not None:
        names = {ETH_IPV4: "IPv4", ETH_IPV6: "IPv6"}
        lines.append(f"    Ethernet type: {names.get(c.ethertype, ethertype_word(c.ethertype))}")
    for word, net in (("source", c.src), ("destination", c.dst)):
        if net is not None:
            fam = "IPv4" if net.version == 4 else "IPv6"
            lines.append(f"    {word} {fam} address: {net.network_address}/{net.netmask}")
    if c.ip_proto is not None:
        lines.append(f"    IPv4 protocol: {proto_word(c.ip_proto).upper()}")
    if c.sport is not None:
        lines.append(f"    source TCP/UDP port or ICMP type: {c.sport}")
    if c.dport is not None:
        lines.append(f"    destination TCP/UDP port or ICMP type: {c.dport}")
    lines.append("  actions:")
    if c.drop:
        lines.append("    drop")
    if c.out_interfaces:
        lines.append("    output interfaces: " + ", ".join(c.out_interfaces))
    if c.nexthop is not None:
        lines.append(f"    output nexthop: {c.nexthop}")
    lines.append("  source: config")
    lines.append(f"  matched: {entry.match_packets} packets, {entry.match_bytes} bytes")
    return "\n".join(lines) + "\n"


def _directflow(s: Session, detail: bool) -> Result:
    table = s.state.flows
    programmed = table.programmed()
    if s.text:
        out = "".join(_flow_text(e) for e in programmed)
        if detail:
            out += "\n".join(f"Flow {e.name}: {e.status}" for e in table.entries()) + "\n"
            out += f"Number of flows programmed: {len(programmed)}\n"
        return {"output": out}
    mac = s.state.version.mac
    result: Result = {"flows": [flow_json(e, mac) for e in programmed]}
    if detail:
        result["details"] = {
            "status": {e.name: e.status for e in table.entries()},
            "numFlowsProgrammed": len(programmed),
        }
    return result


# -- routing -----------------------------------------------------------------------------


def _route_json(route: Route) -> Result:
    connected = route.route_type == "connected"  # EOS: an interface, no next-hop address
    return {
        "routeType": route.route_type,
        "kernelProgrammed": True,
        "hardwareProgrammed": True,
        "directlyConnected": connected,
        "routeAction": "forward",
        "routeLeaked": False,
        "preference": route.preference,
        "metric": route.metric,
        "vias": [
            {"interface": v.interface}
            if connected
            else {"nexthopAddr": str(v.nexthop), "interface": v.interface}
            for v in route.vias
        ],
    }


_ROUTE_CODES = {"eBGP": "B E", "iBGP": "B I", "static": "S", "connected": "C", "kernel": "K"}


def _routes(s: Session, version: int, target: Any) -> Result:
    p = s.state.providers
    if target is None:
        routes = p.routes(version)
    else:
        found = p.route(target)
        routes = [] if found is None else [found]
    if s.text:
        lines = ["VRF: default", ""]
        for r in routes:
            code = _ROUTE_CODES.get(r.route_type, "O")
            head = f" {code:<8} {r.prefix} [{r.preference}/{r.metric}]"
            for i, via in enumerate(r.vias):
                pad = head if i == 0 else " " * len(head)
                if r.route_type == "connected":
                    lines.append(f"{pad} is directly connected, {via.interface}")
                else:
                    lines.append(f"{pad} via {via.nexthop}, {via.interface}")
        return {"output": "\n".join(lines) + "\n"}
    return {
        "vrfs": {
            "default": {
                "routes": {str(r.prefix): _route_json(r) for r in routes},
                "allRoutesProgrammedHardware": True,
                "allRoutesProgrammedKernel": True,
                "routingDisabled": False,
                "defaultRouteState": "notSet",
            }
        }
    }


def _bgp_entry_json(entry: BgpEntry, router_id: str) -> Result:
    paths = []
    for st in entry.paths:
        paths.append(
            {
                "nextHop": str(st.path.nexthop),
                "localPreference": st.local_pref,
                "med": st.path.med,
                "weight": 0,
                "asPathEntry": {"asPath": st.path.as_path or "i", "asPathType": None},
                "peerEntry": {"peerAddr": st.path.peer, "peerRouterId": st.path.peer},
                "reasonNotBestpath": None if st.active else "noReason",
                "routeType": {
                    "valid": st.valid,
                    "active": st.active,
                    "ecmpHead": st.ecmp_head,
                    "ecmp": st.ecmp,
                    "ecmpContributor": st.ecmp_contributor,
                    "suppressed": False,
                    "stale": False,
                    "queued": False,
                    "backup": False,
                    "atomicAggregator": False,
                    "luRoute": False,
                    "ucmp": False,
                },
            }
        )
    return {
        "address": str(entry.prefix.network_address),
        "maskLength": entry.prefix.prefixlen,
        "bgpRoutePaths": paths,
        "totalPaths": len(paths),
        "bgpAdvertisedPeerGroups": {},
    }


def _bgp_text(entry: BgpEntry, router_id: str, asn: int) -> str:
    lines = [
        "BGP routing table information for VRF default",
        f"Router identifier {router_id}, local AS number {asn}",
        f"BGP routing table entry for {entry.prefix}",
        f" Paths: {len(entry.paths)} available",
    ]
    for st in entry.paths:
        flags = ["valid" if st.valid else "invalid", "external"]
        if st.ecmp_head:
            flags.append("ECMP head")
        if st.ecmp:
            flags.append("ECMP")
        if st.active:
            flags.append("best")
        if st.ecmp_contributor:
            flags.append("ECMP contributor")
        lines.append(f"  {st.path.as_path or 'Local'}")
        lines.append(f"    {st.path.nexthop} from {st.path.peer} ({st.path.peer})")
        lines.append(
            f"      Origin IGP, metric {st.path.med}, localpref {st.local_pref}, weight 0, "
            + ", ".join(flags)
        )
    return "\n".join(lines) + "\n"


def _bgp(s: Session, version: int, target: Any) -> Result:
    p = s.state.providers
    if target is None:
        entries = p.bgp_all(version)
    else:
        found = p.bgp(target)
        entries = [] if found is None else [found]
    rid, asn = p.router_id(), p.local_asn()
    if s.text:
        return {"output": "".join(_bgp_text(e, rid, asn) for e in entries)}
    return {
        "vrfs": {
            "default": {
                "vrf": "default",
                "routerId": rid,
                "asn": str(asn),
                "bgpRouteEntries": {str(e.prefix): _bgp_entry_json(e, rid) for e in entries},
            }
        }
    }


def _load_balance(s: Session, t: Tokens) -> Result:
    """show load-balance destination ip|ipv6 ingress-interface I src-ipv4-address A
    dst-ipv4-address B ip-protocol P [src-l4-port p] [dst-l4-port q]"""
    t.keyword("destination")
    fam = t.keyword("ip", "ipv6")
    v = 4 if fam == "ip" else 6
    t.keyword("ingress-interface")
    ingress = t.interface()
    t.keyword(f"src-ipv{v}-address")
    src = t.address(v)
    t.keyword(f"dst-ipv{v}-address")
    dst = t.address(v)
    t.keyword("ip-protocol", "next-header") if v == 6 else t.keyword("ip-protocol")
    proto = t.integer(0, 255)
    sport = t.integer(0, 65535) if t.accept("src-l4-port") else 0
    dport = t.integer(0, 65535) if t.accept("dst-l4-port") else 0
    t.end()
    out = s.state.providers.egress(FiveTuple(ingress, src, dst, proto, sport, dport))
    if s.text:
        text = f"Output Interface: {out}" if out else "Unable to determine output interface"
        return {"output": text + "\n"}
    return {"outputIntf": out or ""}
