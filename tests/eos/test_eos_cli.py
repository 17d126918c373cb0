"""`dfagent eos flows|pin|unpin|cleanup` and `dfagent hooks eos` against the test switch:
--json shapes, one-line errors with exit codes, nothing of another agent touched."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from dfagent.backends.eos.names import flow_name
from dfagent.cli.main import cli
from dfagent.config import to_dict
from dfagent.lab.eapi import EapiSwitch
from tests.eos.helpers import PASSWORD_ENV, VIP, backend, config, flow, flow_entry, item

PIN = ["--src", "198.51.100.7", "--sport", "40001", "--dst", VIP, "--dport", "443"]


@pytest.fixture
def cfg_file(eapi_switch: EapiSwitch, tmp_path: Path) -> str:
    path = tmp_path / "dfagent.yaml"
    path.write_text(yaml.safe_dump(to_dict(config(eapi_switch))))
    return str(path)


def run(args: list[str], password: str = "eapi-test-pw") -> tuple[int, str, str]:
    r = CliRunner().invoke(cli, args, env={PASSWORD_ENV: password})
    return r.exit_code, r.stdout, r.stderr


def test_pin_list_unpin_cleanup(eapi_switch: EapiSwitch, cfg_file: str) -> None:
    other = backend(eapi_switch, prefix="dfa_s2")
    other.start()
    other.pin([item(i) for i in range(3)])
    code, out, err = run(["eos", "pin", "--config", cfg_file, *PIN, "--nexthop", "10.2.1.2",
                          "--json"])  # fmt: skip
    assert (code, err) == (0, "")
    name = "dfa_s1-198_51_100_7-40001-192_0_2_10-443"
    assert json.loads(out) == {"name": name, "nexthop": "10.2.1.2", "switch": "sw1"}
    assert flow_entry(eapi_switch, name).programmed
    code, out, _ = run(["eos", "flows", "--config", cfg_file, "--switch", "sw1", "--json"])
    doc = json.loads(out)
    assert code == 0 and doc["prefix"] == "dfa_s1" and len(doc["flows"]) == 1
    assert doc["flows"][0] == {"name": name, "src": "198.51.100.7", "sport": 40001, "dst": VIP,
                               "dport": 443, "nexthop": "10.2.1.2", "packets": 0,
                               "status": "programmed"}  # fmt: skip
    code, out, _ = run(["eos", "flows", "--config", cfg_file])
    assert code == 0 and out.startswith("switch sw1, prefix dfa_s1: 1 flows")
    assert run(["eos", "unpin", "--config", cfg_file, *PIN])[:2] == (
        0,
        f"removed {name} from sw1\n",
    )
    code, _, err = run(["eos", "unpin", "--config", cfg_file, *PIN])
    assert (code, err) == (3, f"error: no flow {name} on sw1\n")
    run(["eos", "pin", "--config", cfg_file, *PIN, "--nexthop", "10.2.1.2"])
    code, out, _ = run(["eos", "cleanup", "--config", cfg_file, "--yes", "--json"])
    assert code == 0 and json.loads(out)["removed"] == 1
    assert {e.name for e in eapi_switch.state.flows.entries()} == {
        flow_name("dfa_s2", flow(i)) for i in range(3)
    }


def test_errors_are_one_line_with_exit_codes(eapi_switch: EapiSwitch, cfg_file: str) -> None:
    code, _, err = run(["eos", "flows", "--config", cfg_file, "--switch", "sw9"])
    assert (code, err) == (2, f"error: no switch 'sw9' in {cfg_file} (its switch is 'sw1')\n")
    code, _, err = run(["eos", "flows", "--config", cfg_file], password="nope")
    assert code == 1 and err.count("\n") == 1 and "refused user 'dfagent' (HTTP 401)" in err
    code, _, err = run(["eos", "pin", "--config", cfg_file, *PIN[:-2], "--dport", "443",
                        "--nexthop", "2001:db8::9"])  # fmt: skip
    assert code == 2 and "is not a next hop for 192.0.2.10" in err
    bad = [*PIN[:5], "203.0.113.1", *PIN[6:], "--nexthop", "10.2.1.2"]
    code, _, err = run(["eos", "pin", "--config", cfg_file, *bad])
    assert (code, err) == (2, f"error: 203.0.113.1 is not in a VIP of {cfg_file}\n")
    r = CliRunner().invoke(cli, ["eos", "flows", "--config", cfg_file], env={PASSWORD_ENV: None})
    assert (
        r.exit_code == 2
        and "environment variable DFAGENT_TEST_EAPI_PASSWORD is not set" in r.stderr
    )
    eapi_switch.stop()
    code, _, err = run(["eos", "flows", "--config", cfg_file])
    assert code == 1 and "cannot reach http://127.0.0.1:" in err and "Traceback" not in err


def test_hooks_eos_prints_the_event_handlers(tmp_path: Path) -> None:
    code, out, _ = run(["hooks", "eos", "--interface", "Ethernet1"])
    assert code == 0 and "regex %BGP-5-ADJCHANGE" in out
    assert "trigger on-intf Ethernet1 operstatus" in out and "action bash dfagent resync" in out
    code, _, err = run(["hooks", "eos", "--interface", "Eth 1"])
    assert code == 2 and err.startswith("error: 'Eth 1' is not an interface name")
