"""Fill this namespace's conntrack table with established TCP entries (ctnetlink), fast.

Stands in for a busy router's live connections: ASSURED, ESTABLISHED entries of flows that
send nothing (sources walk 100.128.0.0/16 → the VIP's port 443), so the kernel never
early-drops them when the table is full — unlike the unassured entries a SYN flood leaves.
``python -m dfagent.lab.ctfill --count 250000 --dst 1.1.1.1 --timeout 600`` prints one JSON
line: entries made, failures, seconds. About 90,000 entries/s (batches of 512 messages).
"""

from __future__ import annotations

import argparse
import errno
import ipaddress
import json
import socket
import struct
import time

NETLINK_NETFILTER, NETLINK_CAP_ACK, SOL_NETLINK = 12, 10, 270
MSG = (1 << 8) | 0  # NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_NEW
FLAGS = 0x1 | 0x4 | 0x200 | 0x400  # REQUEST, ACK, EXCL, CREATE
NLA_F_NESTED = 0x8000
CTA_TUPLE_ORIG, CTA_TUPLE_REPLY, CTA_STATUS, CTA_PROTOINFO, CTA_TIMEOUT = 1, 2, 3, 4, 7
CTA_TUPLE_IP, CTA_TUPLE_PROTO, CTA_IP_V4_SRC, CTA_IP_V4_DST = 1, 2, 1, 2
CTA_PROTO_NUM, CTA_PROTO_SRC_PORT, CTA_PROTO_DST_PORT = 1, 2, 3
CTA_PROTOINFO_TCP, CTA_PROTOINFO_TCP_STATE = 1, 1
IPS_SEEN_REPLY, IPS_ASSURED, IPS_CONFIRMED = 1 << 1, 1 << 2, 1 << 3
TCP_CONNTRACK_ESTABLISHED = 3
MAX_ENTRIES = 2_000_000
_NLH = struct.Struct("=IHHII")
BATCH = 512


def _attr(kind: int, payload: bytes) -> bytes:
    return struct.pack("=HH", 4 + len(payload), kind) + payload + b"\0" * (-len(payload) % 4)


def _nest(kind: int, *attrs: bytes) -> bytes:
    return _attr(kind | NLA_F_NESTED, b"".join(attrs))


def _tuple(kind: int, src: bytes, dst: bytes, sport: int, dport: int) -> bytes:
    return _nest(
        kind,
        _nest(CTA_TUPLE_IP, _attr(CTA_IP_V4_SRC, src), _attr(CTA_IP_V4_DST, dst)),
        _nest(
            CTA_TUPLE_PROTO,
            _attr(CTA_PROTO_NUM, bytes([socket.IPPROTO_TCP])),
            _attr(CTA_PROTO_SRC_PORT, struct.pack("!H", sport)),
            _attr(CTA_PROTO_DST_PORT, struct.pack("!H", dport)),
        ),
    )


def message(seq: int, i: int, dst: bytes, timeout: int) -> bytes:
    """One established, assured entry: the i-th source of 100.128.0.0/16 (and port)."""
    src = struct.pack("!I", int(ipaddress.IPv4Address("100.128.0.0")) + (i % 65536))
    sport = 1024 + i // 65536
    state = bytes([TCP_CONNTRACK_ESTABLISHED])
    body = (
        struct.pack("=BBH", socket.AF_INET, 0, 0)
        + _tuple(CTA_TUPLE_ORIG, src, dst, sport, 443)
        + _tuple(CTA_TUPLE_REPLY, dst, src, 443, sport)
        + _attr(CTA_STATUS, struct.pack("!I", IPS_SEEN_REPLY | IPS_ASSURED | IPS_CONFIRMED))
        + _attr(CTA_TIMEOUT, struct.pack("!I", timeout))
        + _nest(CTA_PROTOINFO, _nest(CTA_PROTOINFO_TCP, _attr(CTA_PROTOINFO_TCP_STATE, state)))
    )
    return _NLH.pack(_NLH.size + len(body), MSG, FLAGS, seq, 0) + body


def fill(count: int, dst: str, timeout: int) -> dict[str, object]:
    count = min(count, MAX_ENTRIES)
    d = socket.inet_aton(dst)
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    s.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)
    s.bind((0, 0))
    made = failed = 0
    last_error = ""
    t0 = time.monotonic()
    for start in range(0, count, BATCH):
        n = min(BATCH, count - start)
        s.send(b"".join(message(start + k + 1, start + k, d, timeout) for k in range(n)))
        answered = 0
        while answered < n:
            data = s.recv(1 << 20)
            off = 0
            while off + _NLH.size <= len(data):
                length, mtype, _, _, _ = _NLH.unpack_from(data, off)
                if length < _NLH.size:
                    break
                if mtype == 2:  # NLMSG_ERROR: the ack
                    answered += 1
                    err = -struct.unpack_from("=i", data, off + _NLH.size)[0]
                    if err == 0:
                        made += 1
                    else:
                        failed += 1
                        last_error = errno.errorcode.get(err, str(err))
                off += (length + 3) & ~3
    s.close()
    return {"made": made, "failed": failed, "error": last_error,
            "seconds": round(time.monotonic() - t0, 2)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--dst", default="1.1.1.1")
    ap.add_argument("--timeout", type=int, default=600, help="seconds each entry lives")
    a = ap.parse_args()
    print(json.dumps(fill(a.count, a.dst, a.timeout)), flush=True)


if __name__ == "__main__":
    main()
