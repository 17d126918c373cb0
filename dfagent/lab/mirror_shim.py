"""Lab tooling, not part of the agent: a stand-in for a switch's egress mirror sessions.

This kernel has no ERSPAN device for `tc mirred`, so on the lab router this shim does the
job a switch's `monitor session … destination tunnel mode gre` would do at each ECMP
member's *egress*: every TCP SYN leaving a member interface is wrapped in GRE + ERSPAN II,
with that member's session id, and sent to the agent's mirror receiver. Outgoing frames are
taken from an AF_PACKET socket per interface (packet type OUTGOING: after routing, on the
interface that really carried them), so the session id says which next hop the route chose.

A classic BPF filter on each socket queues only outgoing TCP SYNs, and the receive buffer is
raised: on a loaded machine the interpreter falls behind a burst of new connections, and
every frame the kernel drops is a connection left unpinned. `spawn` starts the shim and
returns once its sockets are bound, so no SYN is sent before the shim can see it.

`--synack` adds the second chance's mirror: the SYN-ACKs *arriving* on each member interface
(the servers' answers; packet type HOST), with the same session id, as a switch's `rx`
session on its server-facing ports would send them. `--loss P` (seeded by `--seed`) drops
that share of the mirror copies before they are sent — the SYNs' and, with `--synack-loss`,
the SYN-ACKs' — as a switch does under load; on SIGTERM the shim prints what it sent and
dropped (`STATS` line, JSON).

    python -m dfagent.lab.mirror_shim --collector 127.0.0.1 --member eth2=1 --member eth3=2
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import select
import signal
import socket
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from dfagent.lab.mirror_sender import RawGreSender, erspan2_header, gre_header
from dfagent.lab.retry import wait_until
from dfagent.lab.veth_pair import in_netns

ETH_P_ALL = 0x0003
PACKET_HOST = 0
PACKET_OUTGOING = 4
ETHERTYPE_ERSPAN = 0x88BE
_TCP_SYN, _TCP_ACK = 0x02, 0x10
READY = "mirror shim: "
STATS = "mirror shim stats: "
SO_ATTACH_FILTER = 26
SO_RCVBUFFORCE = 33
RCVBUF = 8 << 20


def _filter(
    pkttype: int, flags: int, mask: int = _TCP_SYN | _TCP_ACK
) -> list[tuple[int, int, int, int]]:
    """Classic BPF (struct sock_filter: code, jt, jf, k): accept unfragmented TCP segments of
    packet type ``pkttype`` whose TCP flags under ``mask`` are ``flags`` (default: SYN and
    ACK bits), IPv4 (any IHL) or IPv6 (TCP as first header)."""
    return [
        (0x20, 0, 0, 0xFFFFF004),  # 0  A = skb->pkt_type (SKF_AD_OFF + SKF_AD_PKTTYPE)
        (0x15, 0, 16, pkttype),  # 1  another packet type -> drop
        (0x28, 0, 0, 12),  # 2  A = ethertype
        (0x15, 0, 7, 0x0800),  # 3  not IPv4 -> 11
        (0x30, 0, 0, 23),  # 4  A = IPv4 protocol
        (0x15, 0, 12, 6),  # 5  not TCP -> drop
        (0x28, 0, 0, 20),  # 6  A = flags + fragment offset
        (0x45, 10, 0, 0x1FFF),  # 7  a later fragment -> drop
        (0xB1, 0, 0, 14),  # 8  X = IPv4 header length
        (0x50, 0, 0, 27),  # 9  A = TCP flags (14 + X + 13)
        (0x05, 0, 0, 4),  # 10 -> 15
        (0x15, 0, 6, 0x86DD),  # 11 not IPv6 -> drop
        (0x30, 0, 0, 20),  # 12 A = IPv6 next header
        (0x15, 0, 4, 6),  # 13 not TCP -> drop
        (0x30, 0, 0, 67),  # 14 A = TCP flags (14 + 40 + 13)
        (0x54, 0, 0, mask),  # 15
        (0x15, 0, 1, flags),  # 16 the wanted SYN/ACK bits -> accept
        (0x06, 0, 0, 0x40000),  # 17 accept
        (0x06, 0, 0, 0),  # 18 drop
    ]


# outgoing SYNs (a member's egress) and incoming SYN-ACKs (the server's answer, ingress)
_SYN_FILTER = _filter(PACKET_OUTGOING, _TCP_SYN)
_SYNACK_FILTER = _filter(PACKET_HOST, _TCP_SYN | _TCP_ACK)


def attach_syn_filter(
    sock: socket.socket,
    synack: bool = False,
    insns: list[tuple[int, int, int, int]] | None = None,
) -> None:
    """Queue only outgoing TCP SYNs (``synack``: incoming SYN-ACKs; ``insns``: that filter
    program, see :func:`syn_bit_filter`) on an AF_PACKET socket."""
    import ctypes

    if insns is None:
        insns = _SYNACK_FILTER if synack else _SYN_FILTER
    prog = b"".join(struct.pack("HBBI", *insn) for insn in insns)
    buf = ctypes.create_string_buffer(prog)
    fprog = struct.pack("HL", len(insns), ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


def syn_bit_filter(pkttype: int) -> list[tuple[int, int, int, int]]:
    """TCP segments with the SYN bit set (SYNs and SYN-ACKs, as EOS's ACL keyword ``syn``
    matches) of one packet type: what a SYN-filtered switch mirror session copies."""
    return _filter(pkttype, _TCP_SYN, _TCP_SYN)


def packet_socket(ifname: str, insns: list[tuple[int, int, int, int]]) -> socket.socket:
    """An AF_PACKET socket on ``ifname`` queueing only what ``insns`` accepts (the filter is
    in place before the bind, so nothing else is ever queued), with a large receive buffer."""
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    try:
        attach_syn_filter(s, insns=insns)
        try:
            s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RCVBUF)
        except PermissionError:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        s.bind((ifname, ETH_P_ALL))  # host order: Python converts it
    except OSError:
        s.close()
        raise
    return s


def is_syn(frame: bytes, want: int = _TCP_SYN) -> bool:
    """An Ethernet frame carrying a TCP SYN (not SYN-ACK; ``want=SYN|ACK``: a SYN-ACK), IPv4 or
    IPv6 without extension headers."""
    if len(frame) < 14:
        return False
    ethertype = struct.unpack_from("!H", frame, 12)[0]
    if ethertype == 0x0800 and len(frame) >= 34:
        ihl = (frame[14] & 0x0F) * 4
        if frame[23] != 6 or len(frame) < 14 + ihl + 14:
            return False
        flags = frame[14 + ihl + 13]
    elif ethertype == 0x86DD and len(frame) >= 14 + 40 + 14:
        if frame[20] != 6:
            return False
        flags = frame[14 + 40 + 13]
    else:
        return False
    return flags & (_TCP_SYN | _TCP_ACK) == want


class Loss:
    """Drops a seeded share of mirror copies, and counts what it sent and dropped."""

    def __init__(self, syn: float, synack: float, seed: int) -> None:
        self.share = {"syn": syn, "synack": synack}
        self.rng = random.Random(seed)
        self.counts = {"syn": 0, "syn_dropped": 0, "synack": 0, "synack_dropped": 0}

    def keep(self, kind: str) -> bool:
        share = self.share[kind]
        if share > 0 and self.rng.random() < share:
            self.counts[f"{kind}_dropped"] += 1
            return False
        self.counts[kind] += 1
        return True


def _packet_socket(ifname: str, synack: bool) -> socket.socket:
    # protocol 0 queues nothing until bind() names one: the filter is in place first
    return packet_socket(ifname, _SYNACK_FILTER if synack else _SYN_FILTER)


def serve(
    collector: str,
    members: dict[str, int],
    synack: bool = False,
    loss: Loss | None = None,
    capture_netns: str | None = None,
) -> None:
    """``capture_netns``: open the packet sockets in that namespace (the switch's ports), the
    sender in ours (the mirror copies then cross a link to the collector)."""
    loss = loss or Loss(0.0, 0.0, 0)
    # fd → (socket, session, packet type, SYN/ACK bits, loss kind)
    socks: dict[int, tuple[socket.socket, int, int, int, str]] = {}
    with in_netns(capture_netns) if capture_netns else contextlib.nullcontext():
        for ifname, session in members.items():
            s = _packet_socket(ifname, False)
            socks[s.fileno()] = (s, session, PACKET_OUTGOING, _TCP_SYN, "syn")
            if synack:
                s = _packet_socket(ifname, True)
                socks[s.fileno()] = (s, session, PACKET_HOST, _TCP_SYN | _TCP_ACK, "synack")
    out = RawGreSender(collector)
    seq = 0

    def stop(*_: object) -> None:
        print(STATS + json.dumps(loss.counts), flush=True)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    print(f"{READY}{members} -> {collector} synack={synack} loss={loss.share}", flush=True)
    while True:
        ready, _, _ = select.select(list(socks), [], [])
        for fd in ready:
            sock, session, pkttype, want, kind = socks[fd]
            frame, addr = sock.recvfrom(65535)
            if addr[2] != pkttype or not is_syn(frame, want) or not loss.keep(kind):
                continue
            seq = (seq + 1) & 0xFFFFFFFF
            header = gre_header(ETHERTYPE_ERSPAN, seq=seq) + erspan2_header(session)
            out.send(header + frame)


def read_stats(log_path: Path) -> dict[str, int]:
    """The counts of the last shim that stopped, from its log (``{}`` when there is none)."""
    found: dict[str, int] = {}
    if log_path.exists():
        for line in log_path.read_text(errors="replace").splitlines():
            if line.startswith(STATS):
                found = dict(json.loads(line[len(STATS) :]))
    return found


def spawn(
    wrap: Callable[[list[str]], list[str]],
    members: dict[str, int],
    log_path: Path,
    collector: str = "127.0.0.1",
    timeout: float = 30,
    *,
    synack: bool = False,
    loss: float = 0.0,
    synack_loss: float = 0.0,
    seed: int = 1,
) -> subprocess.Popen[bytes]:
    """Start the shim (`wrap` puts the command in the router's namespace), its output
    appended to `log_path`, and return once its sockets are bound."""
    argv = [sys.executable, "-m", "dfagent.lab.mirror_shim", "--collector", collector]
    for ifname, session in members.items():
        argv += ["--member", f"{ifname}={session}"]
    if synack:
        argv.append("--synack")
    if loss or synack_loss:
        argv += ["--loss", str(loss), "--synack-loss", str(synack_loss), "--seed", str(seed)]
    start = log_path.stat().st_size if log_path.exists() else 0
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(wrap(argv), stdout=log, stderr=subprocess.STDOUT)

    def ready() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"the mirror shim exited ({proc.returncode}): see {log_path}")
        with open(log_path, "rb") as f:
            f.seek(start)
            return READY.encode() in f.read()

    wait_until(ready, timeout, 0.05, f"the mirror shim's ready line in {log_path}")
    return proc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--collector", required=True, help="where the agent's receiver listens")
    ap.add_argument("--member", action="append", required=True, help="IFNAME=SESSION")
    ap.add_argument("--synack", action="store_true", help="also mirror incoming SYN-ACKs")
    ap.add_argument("--loss", type=_share, default=0.0, help="share of SYN mirrors to drop")
    ap.add_argument("--synack-loss", type=_share, default=0.0, help="same, SYN-ACK mirrors")
    ap.add_argument("--seed", type=int, default=1, help="seed of the loss's random choices")
    ap.add_argument("--capture-netns", help="the namespace whose member ports are watched")
    args = ap.parse_args()
    members = {}
    for item in args.member:
        ifname, sep, session = item.partition("=")
        if not sep or not session.isdigit():
            ap.error(f"--member {item!r}: want IFNAME=SESSION")
        members[ifname] = int(session)
    loss = Loss(args.loss, args.synack_loss, args.seed)
    serve(args.collector, members, args.synack, loss, args.capture_netns)


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a share between 0 and 1")
    return value


if __name__ == "__main__":
    main()
