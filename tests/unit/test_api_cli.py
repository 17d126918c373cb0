"""The CLI as a client: every command against the FakeAgent behind the real gRPC server."""

from __future__ import annotations

import json
import threading
import time

import pytest
from click.testing import CliRunner, Result

from dfagent.api.server import Server
from dfagent.cli.client import DrainProgress, parse_duration
from dfagent.cli.main import cli
from dfagent.core.model import Event
from tests.unit.api_fake import FakeAgent


def run(sock: str, *args: str, input: str | None = None) -> Result:
    res = CliRunner().invoke(cli, [*args, "--socket", sock], input=input)
    # Every outcome is an exit code, never an uncaught exception (a traceback for the user).
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    assert "Traceback" not in res.output
    return res


def test_status(server: Server, sock: str) -> None:
    res = run(sock, "status")
    assert res.exit_code == 0
    assert "dfagent 0.1.0  mode kernel  pid 4242  up 1h02m" in res.output
    assert "nexthops  2 active, 0 draining, 0 drained, 1 dead, 0 gone" in res.output
    assert "pinned    5  repairs 2" in res.output
    assert "health    DEGRADED" in res.output
    assert "problem: s3: neighbour 2001:db8:3::2 failed" in res.output


def test_status_json(server: Server, sock: str) -> None:
    data = json.loads(run(sock, "status", "--json").output)
    assert set(data) == {
        "version", "mode", "pid", "started_at", "vips", "nexthops", "pinned", "repairs",
        "config_file", "healthy", "problems",
    }  # fmt: skip
    assert data["vips"] == ["1.1.1.1/32", "2001:db8::1/128"]
    assert data["nexthops"]["active"] == 2 and data["healthy"] is False


def test_socket_from_environment(server: Server, sock: str) -> None:
    res = CliRunner().invoke(cli, ["status", "--json"], env={"DFAGENT_SOCKET": sock})
    assert res.exit_code == 0 and json.loads(res.output)["pid"] == 4242


def test_nexthops(server: Server, sock: str) -> None:
    lines = run(sock, "nexthops").output.splitlines()
    assert lines[0].split() == [
        "NAME", "ADDRESS", "IFNAME", "FAMILY", "STATE", "PINNED", "MARK", "TABLE",
    ]  # fmt: skip
    assert lines[1].split() == ["s1", "10.0.1.2", "eth1", "ipv4", "active", "3", "0x00000100",
                                "256"]  # fmt: skip
    assert lines[3].split()[5] == "-"  # not counted is "-", not 0


def test_nexthops_json(server: Server, sock: str) -> None:
    data = json.loads(run(sock, "nexthops", "--json").output)
    assert data[0] == {
        "name": "s1", "address": "10.0.1.2", "ifname": "eth1", "family": 4,
        "state": "active", "pinned": 3, "mark": "0x00000100", "table": 256,
    }  # fmt: skip
    assert data[2]["pinned"] is None and data[2]["family"] == 6


def test_flows_filters(server: Server, sock: str) -> None:
    out = run(sock, "flows", "--nexthop", "s1", "--json").output
    assert [f["sport"] for f in json.loads(out)["flows"]] == [40000, 40001, 40002]
    # by address too
    out = run(sock, "flows", "--nexthop", "10.0.2.2", "--json").output
    assert {f["nexthop"] for f in json.loads(out)["flows"]} == {"s2"}
    out = run(sock, "flows", "--dport", "443", "--src", "192.0.2.10", "--json").output
    assert [f["sport"] for f in json.loads(out)["flows"]] == [40001, 40003]
    out = run(sock, "flows", "--vip", "1.1.1.0/24", "--json").output
    assert len(json.loads(out)["flows"]) == 5
    out = run(sock, "flows", "--vip", "2001:db8::1", "--json").output
    assert json.loads(out)["flows"] == []


def test_flows_table(server: Server, sock: str) -> None:
    lines = run(sock, "flows", "--sport", "40001").output.splitlines()
    assert lines[0].split() == ["SOURCE", "DESTINATION", "PROTO", "NEXTHOP", "STATE", "AGE"]
    assert lines[1].split() == ["192.0.2.10:40001", "1.1.1.1:443", "tcp", "s1", "ESTABLISHED",
                                "1s"]  # fmt: skip


def test_flows_paging(server: Server, agent: FakeAgent, sock: str) -> None:
    first = run(sock, "flows", "--limit", "2", "--json")
    page = json.loads(first.output)
    assert len(page["flows"]) == 2 and page["next_page_token"] == "2"
    second = json.loads(run(sock, "flows", "--limit", "2", "--page-token", "2", "--json").output)
    assert [f["sport"] for f in second["flows"]] == [40002, 40003]
    every = json.loads(run(sock, "flows", "--limit", "2", "--all", "--json").output)
    assert len(every["flows"]) == 5 and every["next_page_token"] == ""
    assert "more: --page-token 2" in run(sock, "flows", "--limit", "2").stderr


def test_flows_bad_arguments(server: Server, sock: str) -> None:
    res = run(sock, "flows", "--page-token", "zz")
    assert res.exit_code == 2 and res.stderr == "error: bad page token 'zz'\n"
    res = run(sock, "flows", "--vip", "not-an-ip")
    assert res.exit_code == 2 and "is not an address or prefix" in res.stderr
    res = run(sock, "flows", "--nexthop", "s9")
    assert res.exit_code == 3 and res.stderr == "error: no next hop 's9'\n"
    assert run(sock, "flows", "--dport", "70000").exit_code == 2


def test_flows_purge(server: Server, agent: FakeAgent, sock: str) -> None:
    res = run(sock, "flows", "purge", "--nexthop", "s2")
    assert res.exit_code == 2 and "without --yes" in res.stderr
    assert len(agent.flows) == 5  # nothing purged without --yes
    res = run(sock, "flows", "purge", "--nexthop", "s2", "--yes", "--json")
    assert res.exit_code == 0 and json.loads(res.output) == {"purged": 2}
    assert {f.nexthop for f in agent.flows} == {"s1"}
    assert run(sock, "flows", "purge", "--yes").output == "purged 3 flows\n"
    assert agent.flows == []


def test_drain_undrain(server: Server, agent: FakeAgent, sock: str) -> None:
    res = run(sock, "drain", "s1")
    assert (res.exit_code, res.output) == (0, "s1 draining: 3 pinned flows left\n")
    assert agent.nh("s1").state == "draining" and agent.nh("s1").deadline_at is None
    data = json.loads(run(sock, "undrain", "10.0.1.2", "--json").output)
    assert data == {"nexthop": "s1", "state": "active", "pinned": 3, "deadline_at": None}


def test_drain_deadline_goes_to_the_agent(server: Server, agent: FakeAgent, sock: str) -> None:
    before = time.time()
    data = json.loads(run(sock, "drain", "s2", "--deadline", "10m", "--json").output)
    assert before + 600 <= data["deadline_at"] <= time.time() + 600


def test_drain_not_found(server: Server, sock: str) -> None:
    res = run(sock, "drain", "s9")
    assert (res.exit_code, res.stderr) == (3, "error: no next hop 's9'\n")


def test_drain_usage_errors(server: Server, sock: str) -> None:
    res = run(sock, "drain", "s1", "--timeout", "10m")
    assert res.exit_code == 2 and "--timeout needs --wait" in res.output
    res = run(sock, "drain", "s1", "--wait", "--timeout", "soon")
    assert res.exit_code == 2 and "not a duration like 90s, 10m or 1h" in res.output


def _lower(agent: FakeAgent, name: str, counts: list[int], every: float) -> threading.Thread:
    """Lower the count step by step, each step at least ``every`` seconds after the last and
    only once the client has read the current value (a busy machine must not skip one)."""

    def go() -> None:
        for n in counts:
            reads = agent.status_reads
            time.sleep(every)
            deadline = time.monotonic() + 10
            while agent.status_reads <= reads and time.monotonic() < deadline:
                time.sleep(0.01)
            agent.set_pinned(name, n)

    t = threading.Thread(target=go, daemon=True)
    t.start()
    return t


def test_drain_wait_reaches_zero(server: Server, agent: FakeAgent, sock: str) -> None:
    t = _lower(agent, "s1", [2, 1, 0], every=0.15)
    res = run(sock, "drain", "s1", "--wait", "--interval", "0.03s", "--timeout", "10s")
    t.join()
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    # Not a TTY: one plain line per change, then the verdict.
    assert [ln.split(":")[1].split()[0] for ln in lines[:-1]] == ["3", "2", "1", "0"]
    assert lines[0].startswith("s1 draining: 3 pinned flows left, rate -, about ? left")
    assert "rate " in lines[2] and "/s" in lines[2]
    assert lines[-1] == "s1 drained: no pinned flow left"


def test_drain_wait_on_a_tty_rewrites_one_line(
    server: Server, agent: FakeAgent, sock: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("dfagent.cli.client._stdout_is_tty", lambda: True)
    t = _lower(agent, "s1", [1, 0], every=0.1)
    res = run(sock, "drain", "s1", "--wait", "--interval", "0.03s")
    t.join()
    assert res.exit_code == 0
    live, verdict = res.stdout.rstrip("\n").rsplit("\n", 1)
    assert "\n" not in live  # every update went to the same line ...
    updates = live.split("\r\x1b[K")[1:]  # ... each one wiping it first
    assert updates[0].startswith("s1 draining: 3 pinned flows left")
    assert updates[-1].startswith("s1 drained: 0 pinned flows left")
    assert verdict == "s1 drained: no pinned flow left"


def test_drain_wait_json_lines(server: Server, agent: FakeAgent, sock: str) -> None:
    t = _lower(agent, "s2", [1, 0], every=0.1)
    res = run(sock, "drain", "s2", "--wait", "--interval", "0.03s", "--json")
    t.join()
    updates = [json.loads(ln) for ln in res.stdout.splitlines()]
    assert res.exit_code == 0
    assert set(updates[0]) == {"nexthop", "state", "pinned", "deadline_at", "elapsed_s",
                               "rate_per_s", "eta_s"}  # fmt: skip
    assert updates[-1]["pinned"] == 0 and updates[-1]["state"] == "drained"


def test_drain_wait_hits_its_deadline(server: Server, agent: FakeAgent, sock: str) -> None:
    start = time.monotonic()
    res = run(sock, "drain", "s1", "--wait", "--interval", "0.05s", "--timeout", "0.3s")
    assert res.exit_code == 4
    assert 0.3 <= time.monotonic() - start < 3
    assert res.stderr == (
        "error: s1 still holds 3 pinned flows after 0.3s; it stays drained "
        "(undrain: dfagent undrain s1)\n"
    )
    assert agent.nh("s1").state == "draining"


def test_drain_wait_ctrl_c_leaves_the_drain(
    server: Server, agent: FakeAgent, sock: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupt(_: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("dfagent.cli.client.time.sleep", interrupt)
    res = run(sock, "drain", "s1", "--wait")
    assert res.exit_code == 130
    assert "interrupted: s1 stays drained (undrain with `dfagent undrain s1`)" in res.stderr
    assert agent.nh("s1").state == "draining"


def test_events(server: Server, agent: FakeAgent, sock: str) -> None:
    def feed() -> None:
        while not agent.watchers:
            time.sleep(0.01)
        agent.emit(Event(1700000000.0, "drain", "s1", "3 pinned"))
        agent.emit(Event(1700000001.0, "repair", None, "mark 0x100 restored"))

    threading.Thread(target=feed, daemon=True).start()
    res = run(sock, "events", "--count", "2")
    assert res.exit_code == 0
    assert res.output.splitlines() == [
        "2023-11-14T22:13:20Z  drain  s1  3 pinned",
        "2023-11-14T22:13:21Z  repair  -  mark 0x100 restored",
    ]


def test_events_json_and_agent_stop(server: Server, agent: FakeAgent, sock: str) -> None:
    def feed() -> None:
        while not agent.watchers:
            time.sleep(0.01)
        agent.emit(Event(1700000000.0, "drain", "s1", "3 pinned"))
        agent.stop()

    threading.Thread(target=feed, daemon=True).start()
    res = run(sock, "events", "--json")
    assert json.loads(res.stdout) == {
        "time": 1700000000.0, "kind": "drain", "nexthop": "s1", "detail": "3 pinned",
    }  # fmt: skip
    assert (res.exit_code, res.stderr) == (1, "error: the agent stopped\n")


def test_resync(server: Server, agent: FakeAgent, sock: str) -> None:
    assert run(sock, "resync").output == "resync done\n"
    assert json.loads(run(sock, "resync", "--json").output) == {"resync": "done"}
    assert agent.resyncs == 2


def test_agent_error_is_one_line(server: Server, agent: FakeAgent, sock: str) -> None:
    agent.fail_with = RuntimeError("nft: Could not process rule")
    res = run(sock, "resync")
    assert (res.exit_code, res.stderr) == (1, "error: agent error: nft: Could not process rule\n")


@pytest.mark.parametrize("text,seconds", [("90s", 90), ("10m", 600), ("1h", 3600),
                                          ("1.5s", 1.5), ("250ms", 0.25), ("7", 7)])  # fmt: skip
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "0s", "-1s", "10 minutes", "1d"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_drain_progress_rate_and_eta() -> None:
    p = DrainProgress(window_s=10)
    p.add(0.0, 100)
    assert p.rate() is None and p.eta() is None
    p.add(5.0, 50)
    assert p.rate() == 10.0 and p.eta() == 5.0
    p.add(20.0, 50)  # the window forgets t=0 and 5: no decrease lately, no estimate
    assert p.rate() == 0.0 and p.eta() is None
