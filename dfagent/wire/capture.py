"""Reading mirrored packets from a file, offline: pcap / pcapng captures (Ethernet, raw-IP
or Linux cooked link type) and hex dumps (one outer IP packet or Ethernet frame per line),
and decoding each into a SYN event (what `dfagent decode` shows)."""

from __future__ import annotations

import mmap
import sys
from collections.abc import Iterator
from typing import Any, NamedTuple

from dfagent.wire import DecodeError, Skip, SynEvent, decode_mirror
from dfagent.wire.ether import ETHERTYPE_IPV4, ETHERTYPE_IPV6, VLAN_TPIDS
from dfagent.wire.pcap import (
    SUPPORTED_LINKTYPES,
    CaptureError,
    Frame,
    is_capture,
    iter_capture,
    strip_link,
)

_ETHER_TYPES = VLAN_TPIDS | {ETHERTYPE_IPV4, ETHERTYPE_IPV6}
_NOT_A_CAPTURE = "not a pcap, pcapng or hex capture"
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


class UnreadableFile(Exception):
    pass


class OtherLink(NamedTuple):
    """A packet of a pcapng interface whose link type we do not decode (one shared instance
    per interface); it keeps its packet number and is counted, not decoded."""

    section: int
    interface: int
    linktype: int


Packet = bytes | Skip | DecodeError | OtherLink


def _not_hex(s: str) -> str:
    bad = next((ch for ch in s if ch not in _HEX_DIGITS), None)
    return "odd number of hex digits" if bad is None else f"{bad!r} is not a hex digit"


def _hex_packets(text: str) -> Iterator[bytes | Skip | DecodeError]:
    for lineno, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        s = s.replace(" ", "").replace(":", "").replace("\t", "")
        if s[:2].lower() == "0x":
            s = s[2:]
        try:
            pkt = bytes.fromhex(s)
        except ValueError:
            raise UnreadableFile(
                f"{_NOT_A_CAPTURE}: line {lineno} is not hex ({_not_hex(s)})"
            ) from None
        if (
            len(pkt) >= 14
            and pkt[0] >> 4 not in (4, 6)
            and (pkt[12] << 8 | pkt[13]) in _ETHER_TYPES
        ):
            # an Ethernet frame (e.g. pasted from `tcpdump -xx`)
            try:
                yield strip_link(1, pkt)
            except DecodeError as err:
                yield err
            continue
        yield pkt


def read_packets(path: str) -> Iterator[Packet]:
    """Outer IP packets of the file, in order (a Skip or DecodeError for a link-layer
    problem, an OtherLink for a packet of an interface we do not decode). Raises
    UnreadableFile before yielding anything when the file cannot be read."""
    try:
        f = open(path, "rb")  # noqa: SIM115 (closed in the generator below)
    except OSError as e:
        raise UnreadableFile(f"cannot open {path}: {e.strerror or e}") from None
    try:
        size = f.seek(0, 2)
        f.seek(0)
        head = f.read(4)
    except OSError as e:
        f.close()
        raise UnreadableFile(f"cannot read {path}: {e.strerror or e}") from None
    if size == 0:
        f.close()
        raise UnreadableFile(f"{path}: empty file: {_NOT_A_CAPTURE}")
    if is_capture(head):
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        it = iter_capture(mm)
        try:
            # everything up to the first frame we decode, so that a file with no interface
            # of a supported link type fails before any output
            first, others = _first_decodable(it)
        except CaptureError as e:
            mm.close()
            f.close()
            raise UnreadableFile(f"{path}: {e}") from None
        return _capture_packets(f, mm, others, first, it)
    try:
        f.seek(0)
        text = f.read().decode("ascii")
    except UnicodeDecodeError as e:
        raise UnreadableFile(
            f"{path}: {_NOT_A_CAPTURE}: no pcap or pcapng header, and byte "
            f"0x{e.object[e.start]:02x} at offset {e.start} is not ASCII text"
        ) from None
    except OSError as e:
        raise UnreadableFile(f"cannot read {path}: {e.strerror or e}") from None
    finally:
        f.close()
    if not text.strip():
        raise UnreadableFile(f"{path}: blank file: {_NOT_A_CAPTURE}")
    try:
        packets = list(_hex_packets(text))  # validates the whole file before output starts
    except UnreadableFile as e:
        raise UnreadableFile(f"{path}: {e}") from None
    return iter(packets)


def _other_link(frame: Frame, seen: dict[tuple[int, int], OtherLink]) -> OtherLink:
    key = (frame.section, frame.interface)
    o = seen.get(key)
    if o is None:
        o = seen[key] = OtherLink(frame.section, frame.interface, frame.linktype)
    return o


def _first_decodable(
    it: Iterator[Frame],
) -> tuple[Frame | None, list[tuple[OtherLink, int]]]:
    """The first frame of a supported link type (None at the end of the file), and the
    frames before it as (interface, run length). Raises CaptureError."""
    others: list[tuple[OtherLink, int]] = []
    seen: dict[tuple[int, int], OtherLink] = {}
    for frame in it:
        if frame.linktype in SUPPORTED_LINKTYPES:
            return frame, others
        o = _other_link(frame, seen)
        if others and others[-1][0] is o:
            others[-1] = (o, others[-1][1] + 1)
        else:
            others.append((o, 1))
    return None, others


def _capture_packets(
    f: Any,
    mm: mmap.mmap,
    others: list[tuple[OtherLink, int]],
    first: Frame | None,
    it: Iterator[Frame],
) -> Iterator[Packet]:
    try:
        for o, count in others:
            for _ in range(count):
                yield o
        if first is None:
            return
        seen = {(o.section, o.interface): o for o, _ in others}
        frame: Frame | None = first
        while frame is not None:
            if frame.linktype in SUPPORTED_LINKTYPES:
                try:
                    yield strip_link(frame.linktype, frame.data)
                except DecodeError as err:
                    yield err
            else:
                yield _other_link(frame, seen)
            try:
                frame = next(it, None)
            except CaptureError as e:
                # a truncated capture: what was read stands; the reader says why it stopped
                sys.stderr.write(f"warning: {e}; stopped reading\n")
                return
    finally:
        mm.close()
        f.close()


def decode_packet(pkt: bytes | Skip | DecodeError) -> SynEvent | Skip | DecodeError:
    if not isinstance(pkt, bytes):
        return pkt
    try:
        return decode_mirror(pkt)
    except DecodeError as err:
        return err
