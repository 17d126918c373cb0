"""UDP packets to one address from many source ports, as fast as one process can, for a
bounded time: a forwarding-rate load for a router between lab namespaces.

``python -m dfagent.lab.udpblast --dst 10.2.1.2 --seconds 2 --flows 256`` sends 64-byte
datagrams round-robin over ``flows`` sockets (one source port each: one conntrack entry
each on a router that tracks them) and prints one JSON line: packets sent, seconds.
"""

from __future__ import annotations

import argparse
import json
import resource
import socket
import time

MAX_SECONDS = 60.0
MAX_FLOWS = 4096


def blast(dst: str, port: int, seconds: float, flows: int, size: int = 64) -> dict[str, float]:
    seconds, flows = min(seconds, MAX_SECONDS), max(1, min(flows, MAX_FLOWS))
    fam = socket.AF_INET6 if ":" in dst else socket.AF_INET
    socks = [socket.socket(fam, socket.SOCK_DGRAM) for _ in range(flows)]
    for s in socks:  # unconnected: an ICMP port unreachable must not fail later sends
        s.setblocking(False)
        s.bind(("::" if fam == socket.AF_INET6 else "0.0.0.0", 0))
    addr = (dst, port)
    payload = b"x" * size
    sent = errors = 0
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.monotonic()
    end = t0 + seconds
    while time.monotonic() < end:
        for s in socks:  # a pass over every flow between clock reads
            try:
                s.sendto(payload, addr)
                sent += 1
            except OSError:  # ENOBUFS
                errors += 1
    took = time.monotonic() - t0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    for s in socks:
        s.close()
    # on veth the whole path (lb's forwarding included) mostly runs in this process's
    # system time: packets per CPU second are steadier than per wall second on a busy host
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return {"sent": sent, "errors": errors, "seconds": round(took, 3), "cpu_s": round(cpu, 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dst", required=True)
    ap.add_argument("--port", type=int, default=9)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--flows", type=int, default=256)
    a = ap.parse_args()
    print(json.dumps(blast(a.dst, a.port, a.seconds, a.flows)), flush=True)


if __name__ == "__main__":
    main()
