"""HTTP(S) and Unix-socket transport of the test switch: `POST /command-api`, Basic auth.

Threaded `http.server`. Open connections are tracked so stopping the switch really cuts
every client off (a kept-alive socket must not keep talking to a switch that is "down").
Faults a test can inject live in `Faults`: slow answers, refused credentials, requests
dropped without an answer.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import socket
import socketserver
import ssl
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from dfagent.lab.eapi import rpc

if TYPE_CHECKING:
    from dfagent.lab.eapi.switch import EapiSwitch

API_PATH = "/command-api"
UNAUTHORIZED_BODY = "Unable to authenticate user: Bad username/password combination"


@dataclass
class Faults:
    delay: float = 0.0  # seconds before each answer (a slow or overloaded switch)
    reject_auth: bool = False  # every request gets HTTP 401, whatever the credentials
    drop_requests: int = 0  # the next N requests: connection closed without an answer


@dataclass(frozen=True)
class User:
    name: str
    password: str
    privilege: int = 15


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        # headers and body go out in two writes: with Nagle on, a kept-open connection waits
        # for the client's delayed ACK (~40 ms) before the body (TCP only, not the Unix socket)
        if self.request.family in (socket.AF_INET, socket.AF_INET6):
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().setup()

    server: _HttpServer | _UnixServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Quiet: a test switch answering thousands of requests must not flood the output."""

    def _send(self, status: int, body: bytes, content_type: str, reason: str | None = None) -> None:
        self.send_response(status, reason)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if status == 401:
            self.send_header("WWW-Authenticate", 'Basic realm="eAPI"')
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802
        self._send(405, b"eAPI takes POST /command-api\n", "text/plain")

    def do_POST(self) -> None:  # noqa: N802
        switch = self.server.switch
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.path.split("?")[0] != API_PATH:
            self._send(404, b"not found\n", "text/plain")
            return
        if switch.faults.drop_requests > 0:
            switch.faults.drop_requests -= 1
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        user = self._authenticate(switch)
        if user is None:
            self._send(401, UNAUTHORIZED_BODY.encode(), "text/plain", "Unauthorized")
            return
        if switch.faults.delay:
            time.sleep(switch.faults.delay)
        answer = rpc.handle(
            switch.state,
            body,
            user=user.name,
            privilege=user.privilege,
            record=switch.record,
            internal_error=switch.internal_errors.append,
        )
        self._send(200, json.dumps(answer).encode(), "application/json")

    def _authenticate(self, switch: EapiSwitch) -> User | None:
        if switch.faults.reject_auth:
            return None
        if self.server.unix:  # EOS's on-box socket has no authentication
            return User("local", "", 15)
        header = self.headers.get("Authorization") or ""
        scheme, _, blob = header.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            name, _, password = base64.b64decode(blob.strip()).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        user = switch.users.get(name)
        return user if user is not None and user.password == password else None


class _Tracking(socketserver.BaseServer):
    """Mixed into the servers: remembers open connections so stop() can cut them."""

    switch: EapiSwitch
    unix = False

    def _track_init(self) -> None:
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()

    def track(self, sock: socket.socket) -> None:
        with self.connections_lock:
            self.connections.add(sock)

    def untrack(self, sock: socket.socket) -> None:
        with self.connections_lock:
            self.connections.discard(sock)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away (timed out, refused our certificate) is normal here."""
        if isinstance(sys.exc_info()[1], ConnectionError | ssl.SSLError | TimeoutError):
            return
        super().handle_error(request, client_address)

    def cut_all(self) -> None:
        with self.connections_lock:
            socks = list(self.connections)
            self.connections.clear()
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


class _HttpServer(_Tracking, ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True  # the switch comes back on the same port at once

    def __init__(self, address: tuple[str, int], switch: EapiSwitch, tls: ssl.SSLContext | None):
        self.switch = switch
        self.tls = tls
        self._track_init()
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.address_family = family
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind asks getfqdn(), a reverse DNS lookup that can stall for
        # seconds on a lab address; the name is never used.
        socketserver.TCPServer.server_bind(self)
        self.server_name = str(self.server_address[0])
        self.server_port = int(self.server_address[1])

    def get_request(self) -> tuple[Any, Any]:
        sock, addr = self.socket.accept()
        if self.tls is not None:
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

    def process_request(self, request: Any, client_address: Any) -> None:
        self.track(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        self.untrack(request)
        super().shutdown_request(request)


class _UnixServer(_Tracking, socketserver.ThreadingUnixStreamServer):
    daemon_threads = True
    unix = True

    def __init__(self, path: str, switch: EapiSwitch) -> None:
        self.switch = switch
        self.path = path
        self._track_init()
        if os.path.exists(path):
            os.unlink(path)
        super().__init__(path, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        self.track(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        self.untrack(request)
        super().shutdown_request(request)


class Listener:
    """One listening server (TCP or Unix) with its serving thread."""

    def __init__(self, server: _HttpServer | _UnixServer) -> None:
        self.server = server
        self.thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.server.cut_all()
        self.thread.join(timeout=5)
        if isinstance(self.server, _UnixServer):
            with contextlib.suppress(OSError):
                os.unlink(self.server.path)


def listen_tcp(
    host: str, port: int, switch: EapiSwitch, tls: ssl.SSLContext | None
) -> tuple[Listener, int]:
    """A listener and the port it got."""
    server = _HttpServer((host, port), switch, tls)
    return Listener(server), int(server.server_port)


def listen_unix(path: str, switch: EapiSwitch) -> Listener:
    return Listener(_UnixServer(path, switch))
