"""`dfagent decode FILE`: decode mirrored SYNs from a capture or a hex dump, offline.

For people debugging their switch's mirror configuration. FILE is a pcap / pcapng capture
(Ethernet, raw-IP or Linux cooked link type) taken on the collector, or a text file with one
packet per line in hex (the outer IP packet; an Ethernet frame is recognised and stripped;
spaces, colons and a leading 0x are ignored, blank lines and lines starting with # skipped).

Output: a table, or with --json one JSON object per SYN; with --all also one line for every
packet that is skipped or cannot be decoded. Packets of pcapng interfaces whose link type we
do not decode are counted per interface (a line after the table, or JSON objects on stderr).
Exit 0 when the file was read (even when packets were bad), 2 when it could not be read: no
such file, an empty file, neither a capture nor hex, or no interface of a supported link type.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from dfagent.wire import DecodeError, Skip, SynEvent
from dfagent.wire.capture import OtherLink, UnreadableFile, decode_packet, read_packets
from dfagent.wire.pcap import (
    describe_linktype,
)


def result_json(n: int, r: SynEvent | Skip | DecodeError) -> dict[str, Any]:
    if isinstance(r, SynEvent):
        return {"n": n, **r.to_json()}
    if isinstance(r, Skip):
        return {"n": n, "skipped": r.reason}
    return {"n": n, "error": str(r)}


_HEADER = f"{'n':>6}  {'mirror':<18} {'encap':<8} {'gre_key':<10} {'session':<7} {'vlans':<9} flow"


def _row(n: int, r: SynEvent | Skip | DecodeError) -> str:
    if isinstance(r, SynEvent):
        key = "-" if r.gre_key is None else f"0x{r.gre_key:x}"
        sess = "-" if r.session is None else str(r.session)
        vl = ",".join(map(str, r.vlans)) or "-"
        src = r.src if r.family == 4 else f"[{r.src}]"
        dst = r.dst if r.family == 4 else f"[{r.dst}]"
        frag = "  (first fragment)" if r.fragment else ""
        return (
            f"{n:>6}  {r.mirror:<18} {r.encap:<8} {key:<10} {sess:<7} {vl:<9} "
            f"{src}:{r.sport} → {dst}:{r.dport}{frag}"
        )
    if isinstance(r, Skip):
        return f"{n:>6}  skipped: {r.reason}"
    return f"{n:>6}  error: {r}"


@click.command()
@click.argument("path", metavar="FILE")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.option("--all", "show_all", is_flag=True, help="Also list skipped and undecodable packets.")
def decode(path: str, as_json: bool, show_all: bool) -> None:
    """Decode mirrored TCP SYNs from a pcap/pcapng capture or a file of hex lines.

    Shows, for each SYN, the mirroring switch (outer source), the encapsulation
    (erspan1, erspan2, erspan3, teb, ip), GRE key, ERSPAN session, VLAN tags and the
    connection. Exit 0 when the file was read, 2 when it could not be.
    """
    try:
        packets = read_packets(path)
    except UnreadableFile as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(2)
    counts = {"syn": 0, "skipped": 0, "error": 0}
    other: dict[OtherLink, int] = {}
    if not as_json:
        click.echo(_HEADER)
    for n, pkt in enumerate(packets, 1):
        if isinstance(pkt, OtherLink):
            other[pkt] = other.get(pkt, 0) + 1
            continue
        r = decode_packet(pkt)
        kind = "syn" if isinstance(r, SynEvent) else "skipped" if isinstance(r, Skip) else "error"
        counts[kind] += 1
        if kind != "syn" and not show_all:
            continue
        if as_json:
            click.echo(json.dumps(result_json(n, r)))
        else:
            click.echo(_row(n, r))
    if not as_json:
        total = sum(counts.values())
        click.echo(
            f"{total} packets: {counts['syn']} SYNs, {counts['skipped']} skipped, "
            f"{counts['error']} undecodable" + ("" if show_all else " (--all lists them)")
        )
    for o, count in sorted(other.items()):
        if as_json:
            click.echo(json.dumps(other_link_json(o, count)), err=True)
        else:
            click.echo(_other_link_line(o, count))


def other_link_json(o: OtherLink, count: int) -> dict[str, Any]:
    d: dict[str, Any] = {"skipped": "unsupported-link-type", "packets": count}
    if o.section:
        d["section"] = o.section
    d.update(interface=o.interface, linktype=o.linktype)
    return d


def _other_link_line(o: OtherLink, count: int) -> str:
    where = f"interface {o.interface}" + (f" of section {o.section}" if o.section else "")
    packets = "packet" if count == 1 else "packets"
    return f"skipped {count} {packets} on {where}: {describe_linktype(o.linktype)} not supported"
