"""The churn bench's lab tools without a lab: the connection holder's `churn` loop against a
real local TCP server (held and new connections counted right, each kind of break caught:
another server, reset, silence) and pinwatch's scrape of a real metrics endpoint."""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterator

import pytest

from dfagent.lab.conns import Holder


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client gone mid-request (the reset case): nothing to report

    def __init__(self) -> None:
        self.name = b"s1"
        self.mode = "ok"  # ok | reset | silent: what it does to requests from now on
        super().__init__(("127.0.0.1", 0), Handler)


class Handler(socketserver.StreamRequestHandler):
    server: Server

    def handle(self) -> None:
        for _ in self.rfile:
            if self.server.mode == "reset":
                self.request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
                return  # closed with RST
            if self.server.mode == "silent":
                continue
            self.wfile.write(self.server.name + b"\n")


@pytest.fixture
def server() -> Iterator[Server]:
    srv = Server()
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


def holder(srv: Server, held: int) -> Holder:
    h = Holder()
    assert h.open(["127.0.0.1"], srv.server_address[1], held)["opened"] == held
    return h


def test_churn_counts_made_and_closed_and_breaks_nothing(server: Server) -> None:
    h = holder(server, 5)
    r = h.churn(rate=10, hold=0.5, seconds=2.0, progress=False)
    assert r["broken_held"] == r["broken_new"] == r["open_failed"] == 0, r
    assert r["attempted"] >= 19 and r["made"] == r["closed"] == r["attempted"], r
    assert r["held_alive"] == 5 and len(h.alive) == 5


@pytest.mark.parametrize(("mode", "reason"), [("other", "other server"), ("reset", "reset"),
                                              ("silent", "timeout")])  # fmt: skip
def test_churn_catches_each_break(server: Server, mode: str, reason: str) -> None:
    h = holder(server, 4)
    timer = threading.Timer(1.0, lambda: setattr(server, *(
        ("name", b"s2") if mode == "other" else ("mode", mode))))  # fmt: skip
    timer.start()
    r = h.churn(rate=5, hold=5.0, seconds=2.5, timeout=0.5, progress=False)
    timer.join()
    # every held connection and every new one established before the change broke
    assert r["broken_held"] == 4 and r["held_alive"] == 0, r
    assert r["broken_new"] >= 4 and r["broken_by"] == {reason: 4 + r["broken_new"]}, r
    assert h.broken == 4


def test_pinwatch_reads_the_agents_metrics() -> None:
    """pinwatch's scrape of a real metrics endpoint: evictions, failed pins, slow pins."""
    from dfagent.agent.metrics import Metrics, serve_metrics
    from dfagent.core.ports import PinStats
    from dfagent.lab.pinwatch import scrape

    m = Metrics(mode="map")
    m.pin_batch(PinStats(pinned=5, failed=2, evicted=3), received=[0.0, 0.95], now=1.0)
    server = serve_metrics(m, "127.0.0.1:0")
    try:
        got = scrape(f"http://127.0.0.1:{server.port}/metrics")
    finally:
        server.close()
    assert got == {"evicted": 3, "failed": 2, "slow_pins": 1}
    assert scrape("http://127.0.0.1:1/metrics") == dict.fromkeys(got)
