"""The gRPC server on a real Unix socket: socket handling, health, reflection, error codes."""

from __future__ import annotations

import os
import socket
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from dfagent.api import dfagent_pb2 as pb
from dfagent.api import dfagent_pb2_grpc as pb_grpc
from dfagent.api.server import SERVICE_NAME, ServeError, Server, TcpConfig, serve
from dfagent.core.model import Event
from tests.unit.api_fake import FakeAgent


def channel(path: str) -> grpc.Channel:
    return grpc.insecure_channel(f"unix:{path}")


def test_socket_is_0600_in_a_0755_dir(server: Server, sock: str) -> None:
    assert stat.S_ISSOCK(os.stat(sock).st_mode)
    assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(sock)).st_mode) == 0o755


def test_stop_removes_the_socket(agent: FakeAgent, sock: str) -> None:
    srv = serve(agent, sock)
    srv.stop(grace=0)
    assert not os.path.exists(sock)


def test_stale_socket_is_replaced(agent: FakeAgent, sock: str) -> None:
    os.makedirs(os.path.dirname(sock))
    s = socket.socket(socket.AF_UNIX)
    s.bind(sock)  # bound but not listening: what a killed agent leaves behind
    s.close()
    srv = serve(agent, sock)
    try:
        with channel(sock) as ch:
            assert pb_grpc.ControlStub(ch).Status(pb.StatusRequest(), timeout=5).pid == 4242
    finally:
        srv.stop(grace=0)


def test_refuses_when_another_agent_listens(server: Server, agent: FakeAgent, sock: str) -> None:
    with pytest.raises(ServeError, match="another agent listens on"):
        serve(agent, sock)
    assert stat.S_ISSOCK(os.stat(sock).st_mode)  # the running agent keeps its socket


def test_refuses_to_remove_a_regular_file(agent: FakeAgent, tmp_path: Path) -> None:
    path = tmp_path / "not-a-socket"
    path.write_text("keep me")
    with pytest.raises(ServeError, match="not a socket"):
        serve(agent, str(path))
    assert path.read_text() == "keep me"


def test_tcp_without_tls_is_refused(agent: FakeAgent, sock: str) -> None:
    with pytest.raises(ServeError, match="needs TLS"):
        serve(agent, sock, tcp=TcpConfig("127.0.0.1:0"))
    with pytest.raises(ServeError, match="needs TLS"):
        serve(agent, sock, tcp=TcpConfig("127.0.0.1:0", cert="/x.pem"))
    assert not os.path.exists(sock)  # refused before binding anything


def test_tcp_with_unreadable_cert_is_refused(agent: FakeAgent, sock: str, tmp_path: Path) -> None:
    with pytest.raises(ServeError, match="cannot read"):
        serve(agent, sock, tcp=TcpConfig("127.0.0.1:0", str(tmp_path / "c"), str(tmp_path / "k")))


def test_health_is_serving(server: Server, sock: str) -> None:
    with channel(sock) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        for service in ("", SERVICE_NAME):
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_reflection_lists_the_service(server: Server, sock: str) -> None:
    with channel(sock) as ch:
        db = ProtoReflectionDescriptorDatabase(ch)
        assert SERVICE_NAME in db.get_services()
        assert "grpc.health.v1.Health" in db.get_services()
        desc = db.FindFileContainingSymbol(SERVICE_NAME)
        methods = {m.name for m in desc.service[0].method}
    assert methods == {
        "Status", "ListNexthops", "ListFlows", "PurgeFlows", "Drain", "Undrain",
        "DrainStatus", "WatchEvents", "Resync",
    }  # fmt: skip


def _code(fn: Callable[[], object]) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        fn()
    err = info.value
    assert isinstance(err, grpc.Call)
    return err.code(), err.details() or ""


def test_error_codes(server: Server, agent: FakeAgent, sock: str) -> None:
    with channel(sock) as ch:
        stub = pb_grpc.ControlStub(ch)
        code, msg = _code(lambda: stub.Drain(pb.DrainRequest(nexthop="nope"), timeout=5))
        assert (code, msg) == (grpc.StatusCode.NOT_FOUND, "no next hop 'nope'")
        req = pb.DrainRequest(nexthop="s1", deadline_s=-1)
        code, msg = _code(lambda: stub.Drain(req, timeout=5))
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        agent.fail_with = RuntimeError("conntrack dump failed")
        code, msg = _code(lambda: stub.Status(pb.StatusRequest(), timeout=5))
        assert (code, msg) == (grpc.StatusCode.INTERNAL, "conntrack dump failed")
        assert "Traceback" not in msg


def test_optional_fields_keep_none_apart_from_zero(server: Server, sock: str) -> None:
    with channel(sock) as ch:
        nhs = pb_grpc.ControlStub(ch).ListNexthops(pb.ListNexthopsRequest(), timeout=5).nexthops
    by_name = {n.name: n for n in nhs}
    assert by_name["s1"].HasField("pinned") and by_name["s1"].pinned == 3
    assert not by_name["s3"].HasField("pinned")  # not counted: unset, not 0


def test_watch_events_streams_and_frees_the_watcher_on_cancel(
    server: Server, agent: FakeAgent, sock: str
) -> None:
    with channel(sock) as ch:
        stream = pb_grpc.ControlStub(ch).WatchEvents(pb.WatchEventsRequest())
        _wait_for(lambda: len(agent.watchers) == 1)
        agent.emit(Event(1700000000.0, "drain", "s1", "3 pinned"))
        ev = next(stream)
        assert (ev.kind, ev.nexthop, ev.detail) == ("drain", "s1", "3 pinned")
        watcher = agent.watchers[0]
        stream.cancel()
        # The server closes the agent's iterator: the worker thread does not stay blocked.
        assert watcher.closed.wait(5)
        _wait_for(lambda: not agent.watchers)


def test_watch_events_ends_when_the_agent_stops(
    server: Server, agent: FakeAgent, sock: str
) -> None:
    with channel(sock) as ch:
        stream = pb_grpc.ControlStub(ch).WatchEvents(pb.WatchEventsRequest(), timeout=5)
        _wait_for(lambda: len(agent.watchers) == 1)
        threading.Timer(0.1, agent.stop).start()
        assert list(stream) == []


def _wait_for(cond: Callable[[], object], timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "condition not met in time"
        time.sleep(0.01)
