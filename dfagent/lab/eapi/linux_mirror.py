"""The test switch's lab flavour sends the GRE mirrors its `monitor session`s ask for.

For each session with sources and a ``destination tunnel mode gre source A destination B``,
every TCP segment with the SYN bit set (SYNs and SYN-ACKs, as EOS's ACL keyword ``syn``
matches) seen on a source interface in the session's direction — ``tx``: leaving it (after
routing, so on the member that really carried it), ``rx``: arriving on it, ``both`` — is sent
from A to B as GRE (protocol 0x88BE, sequence numbers) + ERSPAN II + the Ethernet frame, in a
raw IP protocol 47 packet (this kernel has no gre/erspan device). The capture (AF_PACKET
sockets with a classic BPF filter, large buffers) and the encapsulation are the mirror
shim's (dfagent/lab/mirror_shim.py, mirror_sender.py).

*Assumed* (no capture of EOS's own): the ERSPAN session id is the number the session's name
ends in (``s3`` → 3, ``MIRROR`` → 0), so an agent's ``mirror.sessions`` names each member's
session by it. Only SYN-flagged segments are mirrored, as with an ``ip access-group`` ACL
``permit tcp any any syn`` (on EOS a session without one mirrors everything; the agents
would skip the rest). ``EthernetN`` is the router's ``ethN``.

The sessions are read from the running config after every eAPI request (``flows_done``,
called with the switch's lock held): a change opens the new sockets at once and hands them
to the sending thread, so a session configured by a request mirrors the next SYN.
"""

from __future__ import annotations

import os
import re
import select
import socket
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dfagent.lab.eapi.directflow import FlowObserver
from dfagent.lab.mirror_sender import RawGreSender, erspan2_header, gre_header
from dfagent.lab.mirror_shim import (
    ETHERTYPE_ERSPAN,
    PACKET_HOST,
    PACKET_OUTGOING,
    packet_socket,
    syn_bit_filter,
)

if TYPE_CHECKING:
    from dfagent.lab.eapi.state import SwitchState

_ETH = re.compile(r"^Ethernet(\d+)$")
_TRAILING = re.compile(r"(\d+)$")
PKTTYPES = {"tx": (PACKET_OUTGOING,), "rx": (PACKET_HOST,), "both": (PACKET_OUTGOING, PACKET_HOST)}

# session name → ((interface, direction)…, GRE source, GRE destination)
Snapshot = dict[str, tuple[tuple[tuple[str, str], ...], str, str]]


def session_id(name: str) -> int:
    """The ERSPAN session id of a monitor session (module doc: *assumed*)."""
    m = _TRAILING.search(name)
    return int(m.group(1)) & 0x3FF if m else 0


def linux_ifname(intf: str) -> str | None:
    m = _ETH.match(intf)
    return f"eth{m.group(1)}" if m else None


@dataclass
class _Tap:
    sock: socket.socket
    pkttype: int
    session: str
    sid: int
    sender: RawGreSender


@dataclass
class MirrorStats:
    sent: dict[str, int] = field(default_factory=dict)  # session → mirrors sent
    errors: list[str] = field(default_factory=list)


class MonitorMirror(FlowObserver):
    """Follows ``state.ops.monitors`` and sends the sessions' GRE mirrors (module doc)."""

    def __init__(self, state: SwitchState) -> None:
        self.state = state
        self.stats = MirrorStats()
        self._have: Snapshot = {}
        self._taps: dict[int, _Tap] = {}
        self._lock = threading.Lock()  # guards _taps between the observer and the thread
        self._wake_r, self._wake_w = os.pipe()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="monitor-mirror", daemon=True)
        self._thread.start()

    # ── FlowObserver: after every request ──────────────────────────────────────────
    def flows_done(self) -> None:
        want = snapshot(self.state)
        if want != self._have:
            self._have = want
            self._reconfigure(want)

    # ── life ───────────────────────────────────────────────────────────────────────
    def close(self) -> None:
        self._stop = True
        os.write(self._wake_w, b"x")
        self._thread.join(timeout=5)
        with self._lock:
            self._close_taps(self._taps.values())
            self._taps = {}
        os.close(self._wake_r)
        os.close(self._wake_w)

    # ── internals ──────────────────────────────────────────────────────────────────
    def _reconfigure(self, want: Snapshot) -> None:
        taps: dict[int, _Tap] = {}
        for name, (sources, gre_src, gre_dst) in sorted(want.items()):
            try:
                sender = RawGreSender(gre_dst, source=gre_src)
            except OSError as exc:
                self._note(f"monitor session {name}: cannot send from {gre_src}: {exc.strerror}")
                continue
            before = len(taps)
            for intf, direction in sources:
                ifname = linux_ifname(intf)
                if ifname is None:
                    self._note(f"monitor session {name}: {intf} is not an EthernetN here")
                    continue
                for pkttype in PKTTYPES[direction]:
                    try:
                        sock = packet_socket(ifname, syn_bit_filter(pkttype))
                    except OSError as exc:
                        self._note(f"monitor session {name}: {intf} ({ifname}): {exc.strerror}")
                        continue
                    taps[sock.fileno()] = _Tap(sock, pkttype, name, session_id(name), sender)
            if len(taps) == before:
                sender.close()
        with self._lock:
            old, self._taps = self._taps, taps
        os.write(self._wake_w, b"x")  # the thread selects on the new sockets
        self._close_taps(old.values())

    @staticmethod
    def _close_taps(taps: Iterable[_Tap]) -> None:
        senders: dict[int, RawGreSender] = {}
        for tap in taps:
            tap.sock.close()
            senders[id(tap.sender)] = tap.sender
        for sender in senders.values():
            sender.close()

    def _run(self) -> None:
        seq = 0
        while not self._stop:
            with self._lock:
                fds = list(self._taps)
            try:
                ready, _, _ = select.select([self._wake_r, *fds], [], [])
            except (OSError, ValueError):  # a socket closed under us: take the new set
                continue
            if self._wake_r in ready:
                os.read(self._wake_r, 64)
                continue
            for fd in ready:
                with self._lock:
                    tap = self._taps.get(fd)
                if tap is None:
                    continue
                try:
                    frame, addr = tap.sock.recvfrom(65535)
                except OSError:
                    continue
                if addr[2] != tap.pkttype:
                    continue
                seq = (seq + 1) & 0xFFFFFFFF
                header = gre_header(ETHERTYPE_ERSPAN, seq=seq) + erspan2_header(tap.sid)
                try:
                    tap.sender.send(header + frame)
                except OSError as exc:  # no route to the destination now: counted, not fatal
                    self._note(f"monitor session {tap.session}: send: {exc.strerror}")
                    continue
                self.stats.sent[tap.session] = self.stats.sent.get(tap.session, 0) + 1

    def _note(self, msg: str) -> None:
        if len(self.stats.errors) < 1000:
            self.stats.errors.append(msg)
        print(f"eapi-switch mirror: {msg}", file=sys.stderr, flush=True)


def snapshot(state: SwitchState) -> Snapshot:
    """The sessions that send GRE: sources and a tunnel destination both configured."""
    out: Snapshot = {}
    for name, m in state.ops.monitors.items():
        if m.gre_destination is None or m.gre_source is None or not m.sources:
            continue
        sources = tuple(sorted((intf, d) for intf, (d, _acl) in m.sources.items()))
        out[name] = (sources, str(m.gre_source), str(m.gre_destination))
    return out
