"""BIRD 2 nodes on the namespace runner: config parsed first, one daemon and control socket
per node, `birdc` reaching the node's own daemon, nothing left after `down`."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from dfagent.lab import checks, netns, runner, spec
from dfagent.lab.errors import LabError
from dfagent.lab.state import load_state

pytestmark = pytest.mark.lab

BIRD_CONF = """router id 10.9.0.{n};
protocol device {{}}
protocol direct {{ ipv4; interface "lo"; }}
protocol kernel {{ ipv4 {{ export all; }}; }}
protocol bgp peer {{
  local 10.9.0.{n} as 6500{n};
  neighbor 10.9.0.{peer} as 6500{peer};
  ipv4 {{ import all; export where source = RTS_DEVICE; }};
}}
"""


def _lab_dir(tmp_path: Path, broken: bool = False) -> Path:
    d = tmp_path / "birdlab"
    for n, peer in ((1, 2), (2, 1)):
        (d / f"b{n}").mkdir(parents=True)
        conf = BIRD_CONF.format(n=n, peer=peer)
        if broken and n == 2:
            conf = conf.replace("import all", "import everything")
        (d / f"b{n}" / "bird.conf").write_text(conf)
    nodes = {
        f"b{n}": {
            "kind": "linux",
            "binds": [f"b{n}/bird.conf:/etc/bird/bird.conf"],
            "exec": [f"ip addr add 10.9.0.{n}/24 dev eth1", f"ip addr add 192.0.2.{n}/32 dev lo"],
        }
        for n in (1, 2)
    }
    topo = {"name": "birdlab", "topology": {"nodes": nodes, "links": [
        {"endpoints": ["b1:eth1", "b2:eth1"]}]}}  # fmt: skip
    (d / spec.TOPOLOGY_FILE).write_text(yaml.safe_dump(topo))
    checks_ = [
        {"name": "b1's session is up", "exec": {"node": "b1", "cmd":
            "birdc show protocols peer", "contains": "Established"}, "timeout": 20},
        {"name": "b1 learned b2's loopback", "node": "b1", "cmd": "ip -j route show 192.0.2.2",
         "expect": [{"dst": "192.0.2.2", "gateway": "10.9.0.2", "protocol": "bird"}],
         "timeout": 20},
    ]  # fmt: skip
    (d / spec.SPEC_FILE).write_text(yaml.safe_dump({"checks": checks_}))
    return d


@pytest.fixture
def clean():
    runner.down("birdlab")
    yield
    runner.down("birdlab")


def test_bird_nodes_peer_and_go_away(clean, tmp_path):
    if shutil.which("bird") is None:
        pytest.fail("bird is not installed (the Makefile installs bird2)")
    the_lab = spec.load(str(_lab_dir(tmp_path)))
    state = runner.up(the_lab, log=False)
    results = checks.run_checks(state, the_lab)
    assert [r.ok for r in results] == [True, True], results
    out = subprocess.run(
        runner.exec_argv(state, "b2", ["birdc", "show", "route"]),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "192.0.2.1/32" in out
    assert {p.name for p in state.processes} == {"bird"}
    runner.down("birdlab")
    present = netns.list_netns()
    assert not [ns for ns in state.namespaces.values() if ns in present]
    assert not Path(state.run_dir).exists()


def test_bad_bird_config_is_rejected_before_anything_is_created(clean, tmp_path):
    the_lab = spec.load(str(_lab_dir(tmp_path, broken=True)))
    before = set(netns.list_netns())
    with pytest.raises(LabError, match="b2"):
        runner.up(the_lab, log=False)
    assert set(netns.list_netns()) == before
    assert load_state("birdlab") is None
