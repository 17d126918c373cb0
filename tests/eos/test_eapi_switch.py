"""The eAPI test switch through the real pyeapi client: the basics the EOS backend relies on."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyeapi
import pytest
from pyeapi.eapilib import CommandError

from dfagent.lab.eapi import STATUS_PROGRAMMED, EapiSwitch


def node(sw: EapiSwitch) -> pyeapi.client.Node:
    return pyeapi.client.connect(**sw.connect_args(), return_node=True)


def flow_cmds(name: str, src: str, sport: int, nexthop: str = "10.0.1.2") -> list[str]:
    return [
        f"flow {name}",
        "match ethertype ip",
        f"match source ip {src}",
        "match destination ip 192.0.2.10",
        "match ip protocol tcp",
        f"match source port {sport}",
        "match destination port 80",
        f"action output nexthop {nexthop}",
        "timeout idle 300",
        "no persistent",
    ]


def test_show_version_over_pyeapi(eapi_switch: EapiSwitch) -> None:
    n = node(eapi_switch)
    assert n.model == "7050"
    assert n.version == "4.21.3F"
    out = n.enable(["show hostname"])[0]["result"]
    assert out == {"hostname": "dfagent-sw1", "fqdn": "dfagent-sw1"}


def test_flow_programmed_and_shown(eapi_switch: EapiSwitch) -> None:
    n = node(eapi_switch)
    n.config(["directflow", "no shutdown", *flow_cmds("DFA-a", "198.51.100.7", 40000)])
    entry = eapi_switch.state.flow("DFA-a")
    assert entry is not None and entry.status == STATUS_PROGRAMMED
    flows = n.enable("show directflow flows")[0]["result"]["flows"]
    assert [f["name"] for f in flows] == ["DFA-a"]
    assert flows[0]["match"]["ipSrc"] == {"ip": "198.51.100.7", "mask": "255.255.255.255"}
    assert flows[0]["match"]["ipPortSrc"] == 40000
    assert flows[0]["idleTimeout"] == 300 and flows[0]["persistent"] is False


def test_invalid_input_stops_the_request(eapi_switch: EapiSwitch) -> None:
    n = node(eapi_switch)
    with pytest.raises(CommandError) as err:
        n.run_commands(["show hostname", "show bogus", "show version"])
    assert err.value.error_code == 1002
    assert "CLI command 3 of 4 'show bogus' failed: invalid command" in err.value.error_text
    data = err.value.output
    assert data[0] == {} and data[1]["hostname"] == "dfagent-sw1"
    assert data[2] == {"errors": ["Invalid input (at token 1: 'bogus')"]}
    assert len(data) == 3


def rpc(sw: EapiSwitch, body: object, auth: tuple[str, str] | None = None) -> tuple[int, object]:
    """A raw eAPI request: status and decoded body (JSON when it is JSON)."""
    import base64
    import http.client
    import json

    conn = http.client.HTTPConnection(sw.host, sw.port, timeout=5)
    user, password = auth or (sw.username, sw.password)
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    conn.request(
        "POST",
        "/command-api",
        body=data,
        headers={"Content-Type": "application/json-rpc", "Authorization": f"Basic {token}"},
    )
    resp = conn.getresponse()
    raw = resp.read()
    conn.close()
    try:
        return resp.status, json.loads(raw)
    except ValueError:
        return resp.status, raw.decode()


def rpc_json(sw: EapiSwitch, body: object) -> tuple[int, dict[str, Any]]:
    """:func:`rpc` for a request answered in JSON-RPC: the answer is an object."""
    status, answer = rpc(sw, body)
    assert isinstance(answer, dict), answer
    return status, answer


def run_cmds(cmds: list[object], **params: object) -> dict[str, object]:
    return {
        "jsonrpc": "2.0",
        "method": "runCmds",
        "params": {"version": 1, "cmds": cmds, "format": "json", **params},
        "id": "t1",
    }


def test_wire_format_variants(eapi_switch: EapiSwitch) -> None:
    # Unknown top-level keys are tolerated; version "latest"; cmds as {"cmd", "input"}.
    body = run_cmds([{"cmd": "show hostname", "input": ""}], version="latest")
    body["streaming"] = False
    body["somethingNew"] = {"x": 1}
    status, answer = rpc_json(eapi_switch, body)
    assert status == 200
    assert answer == {
        "jsonrpc": "2.0",
        "id": "t1",
        "result": [{"hostname": "dfagent-sw1", "fqdn": "dfagent-sw1"}],
    }
    # autoComplete / expandAliases / timestamps are eAPI params too.
    status, answer = rpc_json(
        eapi_switch, run_cmds(["show hostname"], autoComplete=False, expandAliases=True)
    )
    assert "result" in answer
    # Positional params, as jsonrpclib's runCmds(1, cmds, "text") sends them.
    body = {
        "jsonrpc": "2.0",
        "method": "runCmds",
        "params": [1, ["show hostname"], "text"],
        "id": 7,
    }
    status, answer = rpc_json(eapi_switch, body)
    assert answer["result"] == [{"output": "Hostname: dfagent-sw1\nFQDN:     dfagent-sw1\n"}]
    assert answer["id"] == 7


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (
            {"method": "runCmds", "params": {"version": 1, "cmds": ["show version"]}, "id": 1},
            -32600,
        ),
        ({"jsonrpc": "2.0", "params": {"version": 1, "cmds": ["show version"]}, "id": 1}, -32600),
        (["not", "an", "object"], -32600),
        (b"{not json", -32700),
        ({"jsonrpc": "2.0", "method": "runCommands", "params": {}, "id": 1}, -32601),
        (run_cmds(["show version"], version=2.5), -32602),
        (run_cmds(["show version"], format="xml"), -32602),
        (run_cmds([]), -32602),
        (run_cmds([42]), -32602),
        (run_cmds(["show version"], bogusParam=True), -32602),
    ],
)
def test_bad_requests(eapi_switch: EapiSwitch, body: object, code: int) -> None:
    status, answer = rpc_json(eapi_switch, body)
    assert status == 200
    assert answer["error"]["code"] == code, answer
    assert eapi_switch.state.flows.entries() == []


def test_timestamps_param_adds_meta(eapi_switch: EapiSwitch) -> None:
    _, answer = rpc_json(eapi_switch, run_cmds(["show hostname"], timestamps=True))
    meta = answer["result"][0]["_meta"]
    assert meta["execStartTime"] > 1.6e9 and 0 <= meta["execDuration"] < 5
    _, answer = rpc_json(eapi_switch, run_cmds(["show hostname"]))
    assert "_meta" not in answer["result"][0]


def test_unknown_param_message_matches_what_pyeapi_looks_for(eapi_switch: EapiSwitch) -> None:
    _, answer = rpc_json(eapi_switch, run_cmds(["show version"], bogusParam=True))
    assert "unexpected keyword argument 'bogusParam'" in answer["error"]["message"]


def test_unauthorized_is_http_401(eapi_switch: EapiSwitch) -> None:
    status, body = rpc(eapi_switch, run_cmds(["show version"]), auth=("dfagent", "wrong"))
    assert status == 401 and isinstance(body, str) and "Bad username/password" in body
    status, _ = rpc(eapi_switch, run_cmds(["show version"]), auth=("nobody", eapi_switch.password))
    assert status == 401
    bad = pyeapi.client.connect(
        **{**eapi_switch.connect_args(), "password": "wrong"}, return_node=True
    )
    with pytest.raises(pyeapi.eapilib.ConnectionError, match="Unauthorized"):
        bad.enable("show version")
    # The fault: right credentials refused (an AAA server rejecting everyone).
    eapi_switch.faults.reject_auth = True
    with pytest.raises(pyeapi.eapilib.ConnectionError, match="Unauthorized"):
        node(eapi_switch).enable("show version")
    eapi_switch.faults.reject_auth = False
    assert node(eapi_switch).enable("show hostname")[0]["result"]["hostname"] == "dfagent-sw1"
    assert [r.error_code for r in eapi_switch.requests] == [None]  # 401s never reach the CLI


def test_no_authorization_header_is_401(eapi_switch: EapiSwitch) -> None:
    import http.client

    conn = http.client.HTTPConnection(eapi_switch.host, eapi_switch.port, timeout=5)
    conn.request("POST", "/command-api", body=b"{}")
    assert conn.getresponse().status == 401
    conn.close()


def test_unconverted_command_1003_and_pyeapi_text_fallback(eapi_switch: EapiSwitch) -> None:
    n = node(eapi_switch)
    with pytest.raises(CommandError) as err:
        n.run_commands(["show running-config"])
    assert err.value.error_code == 1003
    assert "'show running-config' failed: unconverted command" in err.value.error_text
    # pyeapi's enable() retries a 1003 as text: that is how clients read the config.
    out = n.enable("show running-config")[0]
    assert out["encoding"] == "text" and "hostname dfagent-sw1" in out["result"]["output"]


def test_unauthorized_command_1005(eapi_switch: EapiSwitch) -> None:
    eapi_switch.add_user("viewer", "view-pw", privilege=1)
    viewer = pyeapi.client.connect(
        **{**eapi_switch.connect_args(), "username": "viewer", "password": "view-pw"},
        return_node=True,
    )
    assert viewer.enable("show hostname")[0]["result"]["hostname"] == "dfagent-sw1"
    with pytest.raises(CommandError) as err:
        viewer.config(["directflow", "no shutdown"])
    assert err.value.error_code == 1005
    assert "permission to run command denied" in err.value.error_text
    assert eapi_switch.state.flows.enabled is False


def test_privileged_mode_required(eapi_switch: EapiSwitch) -> None:
    _, answer = rpc_json(eapi_switch, run_cmds(["configure", "directflow"]))
    assert answer["error"]["code"] == 1002
    assert answer["error"]["data"] == [{"errors": ["Invalid input (privileged mode required)"]}]


def test_enable_secret_via_cmd_input(eapi_switch: EapiSwitch) -> None:
    eapi_switch.state.enable_secret = "s3cret"
    with pytest.raises(CommandError):
        node(eapi_switch).enable("show hostname")
    n = pyeapi.client.connect(**eapi_switch.connect_args(), return_node=True, enablepwd="s3cret")
    assert n.config(["hostname sw-lab"]) == [{}]
    assert eapi_switch.state.hostname == "sw-lab"


def test_abbreviations_only_with_autocomplete(eapi_switch: EapiSwitch) -> None:
    _, answer = rpc_json(eapi_switch, run_cmds(["sh ver"]))
    assert answer["error"]["code"] == 1002
    _, answer = rpc_json(eapi_switch, run_cmds(["sh ver"], autoComplete=True))
    assert answer["result"][0]["modelName"] == "DCS-7050SX-64"
    # An ambiguous abbreviation stays invalid: `ro` is route-map or router.
    _, answer = rpc_json(eapi_switch, run_cmds(["enable", "configure", "ro"], autoComplete=True))
    assert answer["error"]["code"] == 1002  # route-map or router


def test_text_format(eapi_switch: EapiSwitch) -> None:
    n = node(eapi_switch)
    out = n.run_commands(["show version", "configure", "hostname t1", "end"], encoding="text")
    assert out[0]["output"].startswith("Arista DCS-7050SX-64\n")
    assert out[1:] == [{"output": ""}, {"output": ""}, {"output": ""}]


def test_switch_down_and_back_on_the_same_port(eapi_switch: EapiSwitch) -> None:
    n = node(eapi_switch)
    n.config(["directflow", "no shutdown", *flow_cmds("DFA-keep", "198.51.100.1", 1)])
    port = eapi_switch.port
    eapi_switch.stop()
    assert not eapi_switch.running
    with pytest.raises(pyeapi.eapilib.ConnectionError, match="Socket error"):
        n.enable("show hostname")
    eapi_switch.start()
    assert eapi_switch.port == port
    # The same pyeapi Node reconnects; the switch kept its config (an eAPI outage).
    names = [f["name"] for f in n.enable("show directflow flows")[0]["result"]["flows"]]
    assert names == ["DFA-keep"]


def test_stop_cuts_kept_alive_connections(eapi_switch: EapiSwitch) -> None:
    import http.client
    import json

    conn = http.client.HTTPConnection(eapi_switch.host, eapi_switch.port, timeout=5)
    headers = {"Authorization": "Basic ZGZhZ2VudDplYXBpLXRlc3QtcHc="}  # dfagent:eapi-test-pw
    conn.request("POST", "/command-api", json.dumps(run_cmds(["show hostname"])), headers)
    assert conn.getresponse().read()
    eapi_switch.stop()
    with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
        conn.request("POST", "/command-api", json.dumps(run_cmds(["show hostname"])), headers)
        conn.getresponse().read()
    conn.close()


def test_slow_switch_times_out_the_client(eapi_switch: EapiSwitch) -> None:
    eapi_switch.faults.delay = 1.0
    slow = pyeapi.client.connect(**eapi_switch.connect_args(), timeout=0.3, return_node=True)
    with pytest.raises(pyeapi.eapilib.ConnectionError, match="timed out"):
        slow.enable("show hostname")
    eapi_switch.faults.delay = 0.0
    assert slow.enable("show hostname")[0]["result"]["hostname"] == "dfagent-sw1"


def test_dropped_requests(eapi_switch: EapiSwitch) -> None:
    eapi_switch.faults.drop_requests = 1
    n = node(eapi_switch)
    with pytest.raises(pyeapi.eapilib.ConnectionError):
        n.enable("show hostname")
    assert n.enable("show hostname")[0]["result"]["hostname"] == "dfagent-sw1"


def test_unix_socket_without_auth(tmp_path: Path) -> None:
    path = str(tmp_path / "command-api.sock")
    with EapiSwitch(unix_socket=path, password="unused") as sw:
        # pyeapi.client.connect() has no socket path argument (it uses EOS's
        # /var/run/command-api.sock): build the connection the way connect() would.
        n = pyeapi.client.Node(pyeapi.eapilib.SocketEapiConnection(path=path))
        assert n.enable("show hostname")[0]["result"]["hostname"] == "dfagent-sw1"
        assert sw.requests[-1].user == "local"
    import os

    assert not os.path.exists(path)


def test_https(tmp_path: Path) -> None:
    from dfagent.lab.eapi import make_self_signed_cert

    cert = make_self_signed_cert(tmp_path)
    with EapiSwitch(password="pw", tls=cert) as sw:
        assert sw.url.startswith("https://")
        n = pyeapi.client.connect(**sw.connect_args(), return_node=True)  # no verification
        assert n.enable("show hostname")[0]["result"]["hostname"] == "dfagent-sw1"
        # A client that verifies against the test CA gets through too.
        import ssl

        ctx = ssl.create_default_context(cafile=cert[0])
        n = pyeapi.client.connect(**sw.connect_args(), context=ctx, return_node=True)
        assert n.enable("show hostname")[0]["result"]["hostname"] == "dfagent-sw1"
        strict = pyeapi.client.connect(
            **sw.connect_args(), context=ssl.create_default_context(), return_node=True
        )
        with pytest.raises(pyeapi.eapilib.ConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
            strict.enable("show hostname")


def test_ipv6_listener() -> None:
    with EapiSwitch("::1", password="pw") as sw:
        assert sw.url == f"http://[::1]:{sw.port}/command-api"
        n = pyeapi.client.connect(**sw.connect_args(), return_node=True)
        assert n.enable("show hostname")[0]["result"]["hostname"] == "dfagent-sw1"


def test_two_switches_are_independent(make_eapi_switch: Callable[..., EapiSwitch]) -> None:
    a = make_eapi_switch(hostname="leaf1")
    b = make_eapi_switch(hostname="leaf2", capacity=10)
    assert a.port != b.port
    node(a).config(["directflow", "no shutdown", "flow DFA-only-a", "match ethertype ip"])
    assert node(b).enable("show directflow flows")[0]["result"]["flows"] == []
    assert node(b).enable("show hostname")[0]["result"]["hostname"] == "leaf2"
    assert b.state.flows.capacity == 10


def test_a_crash_inside_the_switch_is_1001_and_recorded(eapi_switch: EapiSwitch) -> None:
    class Broken:
        def read(self, names: list[str]) -> dict[str, tuple[int, int]]:
            raise RuntimeError("datapath gone")

    eapi_switch.state.set_counter_source(Broken())
    _, answer = rpc_json(eapi_switch, run_cmds(["show hostname"]))
    assert answer["error"]["code"] == 1001
    assert answer["error"]["data"] == [{"errors": ["Command raised an internal exception"]}]
    assert "datapath gone" in eapi_switch.internal_errors[0]
    eapi_switch.internal_errors.clear()  # seen: the fixture would fail the test otherwise
    eapi_switch.state.set_counter_source(None)
