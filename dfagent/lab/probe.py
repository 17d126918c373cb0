"""Open N TCP connections to a lab service, ask each once, count who answered.

`python -m dfagent.lab.probe ADDR PORT --count N` prints JSON:
`{"answers": {"<answer>": n, …}, "errors": k}`. Used by lab checks to see how flows spread.
"""

from __future__ import annotations

import argparse
import json
import socket
from collections import Counter


def probe(addr: str, port: int, count: int, timeout: float = 2.0) -> dict[str, object]:
    answers: Counter[str] = Counter()
    errors = 0
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    for _ in range(count):
        try:
            with socket.socket(family, socket.SOCK_STREAM) as s:
                s.settimeout(timeout)
                s.connect((addr, port))
                s.sendall(b"who\n")
                data = b""
                while not data.endswith(b"\n"):
                    chunk = s.recv(256)
                    if not chunk:
                        break
                    data += chunk
                if data.endswith(b"\n"):
                    answers[data.decode().strip()] += 1
                else:
                    errors += 1
        except OSError:
            errors += 1
    return {"answers": dict(answers), "errors": errors}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("addr")
    ap.add_argument("port", type=int)
    ap.add_argument("--count", type=int, default=16)
    args = ap.parse_args()
    print(json.dumps(probe(args.addr, args.port, args.count)))


if __name__ == "__main__":
    main()
