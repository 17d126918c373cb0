"""A thin client of the control API: connects to ``unix:PATH``, returns core.model values.

Connection problems are told apart before gRPC gets involved, with a plain ``connect()`` on
the socket: the kernel's errno says exactly whether the agent is absent (no file, refused)
or the caller lacks permission, which gRPC folds into one UNAVAILABLE.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import grpc

from dfagent.api import convert
from dfagent.api import dfagent_pb2 as pb
from dfagent.api import dfagent_pb2_grpc as pb_grpc
from dfagent.api.control import InvalidArgument, NotFound
from dfagent.api.server import DEFAULT_SOCKET
from dfagent.core.model import AgentStatus, DrainInfo, Event, FlowFilter, FlowPage, NexthopInfo

T = TypeVar("T")

DEFAULT_TIMEOUT = 10.0


class ClientError(Exception):
    """Base of what the client raises; the message is for the operator as is."""


class AgentNotRunning(ClientError):
    def __init__(self, path: str) -> None:
        super().__init__(
            f"agent not running: start it with `dfagent run --config …` or check --socket {path}"
        )


class AgentPermissionDenied(ClientError):
    def __init__(self, path: str) -> None:
        super().__init__(f"permission denied on {path}: run as root (the socket is 0600)")


class AgentError(ClientError):
    """The agent answered with an error other than not-found / invalid-argument."""


def check_socket(path: str) -> None:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except PermissionError:
        raise AgentPermissionDenied(path) from None
    except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError):
        raise AgentNotRunning(path) from None
    except OSError as exc:
        raise AgentError(f"cannot connect to {path}: {exc.strerror}") from None
    finally:
        probe.close()


class Client:
    def __init__(self, socket_path: str = DEFAULT_SOCKET, timeout: float = DEFAULT_TIMEOUT):
        check_socket(socket_path)
        self.socket_path = socket_path
        self.timeout = timeout
        self._channel = grpc.insecure_channel(f"unix:{socket_path}")
        self._stub = pb_grpc.ControlStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _rpc(self, method: Callable[..., Any], request: Any) -> Any:
        return self._translate(lambda: method(request, timeout=self.timeout))

    def _translate(self, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except grpc.RpcError as exc:
            raise self._error(exc) from None

    def _error(self, exc: grpc.RpcError) -> ClientError | NotFound | InvalidArgument:
        code = exc.code() if isinstance(exc, grpc.Call) else None
        details = (exc.details() if isinstance(exc, grpc.Call) else None) or str(exc)
        if code == grpc.StatusCode.NOT_FOUND:
            return NotFound(details)
        if code == grpc.StatusCode.INVALID_ARGUMENT:
            return InvalidArgument(details)
        if code == grpc.StatusCode.UNAVAILABLE:
            # The socket answered a moment ago; re-probe to say why it no longer does.
            try:
                check_socket(self.socket_path)
            except ClientError as probe_error:
                return probe_error
            return AgentError(f"agent unavailable: {details}")
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return AgentError(f"agent did not answer within {self.timeout:g}s")
        return AgentError(f"agent error: {details}")

    def status(self) -> AgentStatus:
        return convert.status_from_pb(self._rpc(self._stub.Status, pb.StatusRequest()))

    def list_nexthops(self) -> list[NexthopInfo]:
        reply = self._rpc(self._stub.ListNexthops, pb.ListNexthopsRequest())
        return [convert.nexthop_from_pb(n) for n in reply.nexthops]

    def list_flows(self, filter: FlowFilter, limit: int = 0, page_token: str = "") -> FlowPage:
        req = pb.ListFlowsRequest(
            filter=convert.filter_to_pb(filter), limit=limit, page_token=page_token
        )
        return convert.page_from_pb(self._rpc(self._stub.ListFlows, req))

    def purge_flows(self, filter: FlowFilter) -> int:
        req = pb.PurgeFlowsRequest(filter=convert.filter_to_pb(filter))
        return int(self._rpc(self._stub.PurgeFlows, req).purged)

    def drain(self, nexthop: str, deadline_s: float | None = None) -> DrainInfo:
        req = pb.DrainRequest(nexthop=nexthop)
        if deadline_s is not None:
            req.deadline_s = deadline_s
        return convert.drain_from_pb(self._rpc(self._stub.Drain, req))

    def undrain(self, nexthop: str) -> DrainInfo:
        req = pb.NexthopRequest(nexthop=nexthop)
        return convert.drain_from_pb(self._rpc(self._stub.Undrain, req))

    def drain_status(self, nexthop: str) -> DrainInfo:
        req = pb.NexthopRequest(nexthop=nexthop)
        return convert.drain_from_pb(self._rpc(self._stub.DrainStatus, req))

    def watch_events(self) -> Iterator[Event]:
        # No timeout: the stream lasts as long as the caller watches.
        stream = self._stub.WatchEvents(pb.WatchEventsRequest())
        try:
            while True:
                try:
                    msg = self._translate(lambda: next(stream))
                except StopIteration:
                    return
                yield convert.event_from_pb(msg)
        finally:
            stream.cancel()

    def resync(self) -> None:
        self._rpc(self._stub.Resync, pb.ResyncRequest())
