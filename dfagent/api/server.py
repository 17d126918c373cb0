"""The gRPC server: a thin adapter from the ``dfagent.v1.Control`` service to AgentControl.

Each servicer method is one call into the agent plus conversion (architecture convention 8:
the agent's loop stays the only owner of state). Errors the agent raises on purpose keep
their gRPC code and message; anything else becomes INTERNAL with its message, logged here
with the traceback, never sent over the wire.

The Unix socket is the default and only unauthenticated transport: its 0600 mode is the
access control. TCP exists for remote automation and is served with TLS or not at all.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import stat
import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from dfagent.api import convert
from dfagent.api import dfagent_pb2 as pb
from dfagent.api import dfagent_pb2_grpc as pb_grpc
from dfagent.api.control import AgentControl, InvalidArgument, NotFound

log = logging.getLogger(__name__)

DEFAULT_SOCKET = "/run/dfagent/dfagent.sock"
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Control"].full_name  # "dfagent.v1.Control"
DEFAULT_FLOW_LIMIT = 100
MAX_FLOW_LIMIT = 10_000

T = TypeVar("T")


class ServeError(Exception):
    """The server cannot start (socket taken, TCP without TLS, …); message for the operator."""


@dataclass(frozen=True)
class TcpConfig:
    address: str  # "host:port", e.g. "[::]:50051"
    cert: str | None = None  # PEM paths; both required
    key: str | None = None


def _code_for(exc: Exception) -> tuple[grpc.StatusCode, str]:
    if isinstance(exc, NotFound):
        return grpc.StatusCode.NOT_FOUND, str(exc)
    if isinstance(exc, InvalidArgument):
        return grpc.StatusCode.INVALID_ARGUMENT, str(exc)
    log.error("control call failed", exc_info=exc)
    return grpc.StatusCode.INTERNAL, str(exc) or type(exc).__name__


def _call(context: grpc.ServicerContext, fn: Callable[[], T]) -> T:
    try:
        return fn()
    except Exception as exc:  # every error becomes a status, see _code_for
        code, msg = _code_for(exc)
    context.abort(code, msg)  # raises; outside the except so no chained traceback leaks
    raise AssertionError("unreachable")


class ControlServicer(pb_grpc.ControlServicer):
    def __init__(self, control: AgentControl) -> None:
        self._c = control

    def Status(self, request: Any, context: grpc.ServicerContext) -> pb.StatusReply:
        return convert.status_to_pb(_call(context, self._c.status))

    def ListNexthops(self, request: Any, context: grpc.ServicerContext) -> pb.ListNexthopsReply:
        nhs = _call(context, self._c.list_nexthops)
        return pb.ListNexthopsReply(nexthops=[convert.nexthop_to_pb(n) for n in nhs])

    def ListFlows(self, request: Any, context: grpc.ServicerContext) -> pb.ListFlowsReply:
        # The limit is clamped here so no client can ask the agent for its whole table at once.
        limit = min(request.limit or DEFAULT_FLOW_LIMIT, MAX_FLOW_LIMIT)
        flt = convert.filter_from_pb(request.filter)
        page = _call(context, lambda: self._c.list_flows(flt, limit, request.page_token))
        return convert.page_to_pb(page)

    def PurgeFlows(self, request: Any, context: grpc.ServicerContext) -> pb.PurgeFlowsReply:
        flt = convert.filter_from_pb(request.filter)
        return pb.PurgeFlowsReply(purged=_call(context, lambda: self._c.purge_flows(flt)))

    def Drain(self, request: Any, context: grpc.ServicerContext) -> pb.DrainReply:
        deadline = request.deadline_s if request.HasField("deadline_s") else None
        return convert.drain_to_pb(_call(context, lambda: self._c.drain(request.nexthop, deadline)))

    def Undrain(self, request: Any, context: grpc.ServicerContext) -> pb.DrainReply:
        return convert.drain_to_pb(_call(context, lambda: self._c.undrain(request.nexthop)))

    def DrainStatus(self, request: Any, context: grpc.ServicerContext) -> pb.DrainReply:
        return convert.drain_to_pb(_call(context, lambda: self._c.drain_status(request.nexthop)))

    def WatchEvents(self, request: Any, context: grpc.ServicerContext) -> Iterator[pb.Event]:
        events = _call(context, self._c.watch_events)
        close = getattr(events, "close", None)
        if close is not None:
            # Runs when the client cancels or the server stops: unblocks the worker thread.
            context.add_callback(_quiet(close))
        try:
            for ev in events:
                yield convert.event_to_pb(ev)
        except Exception as exc:
            code, msg = _code_for(exc)
            context.abort(code, msg)

    def Resync(self, request: Any, context: grpc.ServicerContext) -> pb.ResyncReply:
        _call(context, self._c.resync)
        return pb.ResyncReply()


def _quiet(fn: Callable[[], object]) -> Callable[[], None]:
    def run() -> None:
        try:
            fn()
        except Exception:  # a generator still running refuses close(): nothing to do
            log.debug("closing an event stream failed", exc_info=True)

    return run


def _claim_socket(path: str) -> None:
    """Make ``path`` free for our socket: create its directory, remove a stale socket.

    A socket file nobody listens on is what a killed agent leaves; one that answers belongs
    to a running agent, and taking it over would cut that agent off from its clients.
    """
    parent = os.path.dirname(path) or "."
    os.makedirs(parent, mode=0o755, exist_ok=True)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise ServeError(f"{path} exists and is not a socket: not removing it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        log.info("removing stale socket %s", path)
        os.unlink(path)
        return
    except OSError as exc:
        raise ServeError(f"cannot check {path}: {exc.strerror}") from None
    finally:
        probe.close()
    raise ServeError(f"another agent listens on {path}: stop it first")


class Server:
    """A running API server; ``stop()`` marks health NOT_SERVING and removes the socket."""

    def __init__(self, grpc_server: grpc.Server, health_servicer: Any, socket_path: str):
        self._server = grpc_server
        self._health = health_servicer
        self.socket_path = socket_path
        self._stopped = threading.Event()

    def stop(self, grace: float | None = 1.0) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        self._health.enter_graceful_shutdown()
        self._server.stop(grace).wait()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)

    def wait(self, timeout: float | None = None) -> bool:
        return bool(self._server.wait_for_termination(timeout))


def _tls_credentials(tcp: TcpConfig) -> grpc.ServerCredentials:
    if not tcp.cert or not tcp.key:
        raise ServeError(f"TCP {tcp.address} needs TLS: give both a certificate and a key")
    try:
        with open(tcp.key, "rb") as k, open(tcp.cert, "rb") as c:
            return grpc.ssl_server_credentials([(k.read(), c.read())])
    except OSError as exc:
        raise ServeError(f"cannot read {exc.filename}: {exc.strerror}") from None


def serve(
    control: AgentControl,
    socket_path: str = DEFAULT_SOCKET,
    tcp: TcpConfig | None = None,
    max_workers: int = 16,
) -> Server:
    """Start serving ``control``; raises ServeError with a one-line reason if it cannot."""
    creds = _tls_credentials(tcp) if tcp is not None else None  # refuse before binding
    _claim_socket(socket_path)
    # Each WatchEvents client holds a worker thread for as long as it watches.
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers))
    pb_grpc.add_ControlServicer_to_server(ControlServicer(control), server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (
            SERVICE_NAME,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ),
        server,
    )
    # The socket must never exist with a wider mode, not even briefly: bind under a umask
    # that gives 0600. The umask is process-wide, so this happens once, at start-up.
    old = os.umask(0o177)
    try:
        bound = server.add_insecure_port(f"unix:{socket_path}")
    except RuntimeError as exc:
        raise ServeError(f"cannot listen on {socket_path}: {exc}") from None
    finally:
        os.umask(old)
    if not bound:
        raise ServeError(f"cannot listen on {socket_path}")
    os.chmod(socket_path, 0o600)  # belt and braces if grpc ever binds outside this call
    if tcp is not None and creds is not None:
        try:
            port = server.add_secure_port(tcp.address, creds)
        except RuntimeError as exc:
            port = 0
            log.debug("add_secure_port: %s", exc)
        if not port:
            os.unlink(socket_path)
            raise ServeError(f"cannot listen on {tcp.address} (address in use or invalid)")
    server.start()
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_servicer.set(SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)
    return Server(server, health_servicer, socket_path)
