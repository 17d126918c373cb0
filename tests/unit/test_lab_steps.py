"""`call`/`do` steps: validated when lab.yaml loads; the fabric and BIRD check functions judge
canned command output right (including the failures they must report)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from dfagent.lab import bird_checks, fabric_checks, fabric_gen, spec
from dfagent.lab.errors import TopologyError


def test_call_and_do_steps_are_checked_when_the_lab_loads(tmp_path):
    (tmp_path / spec.TOPOLOGY_FILE).write_text(
        yaml.safe_dump({"name": "t", "topology": {"nodes": {"a": {"kind": "linux"}}}})
    )
    steps = [
        {"name": "ok", "call": "dfagent.lab.fabric_checks.host_pings"},
        {"name": "no module", "call": "dfagent.lab.nosuch.fn"},
        {"name": "no function", "do": "dfagent.lab.link_actions.nosuch"},
        {"name": "bad args", "do": "dfagent.lab.link_actions.links_down", "args": [1]},
        {"name": "bad node", "do": "dfagent.lab.link_actions.links_down", "args": {"node": "z"}},
        {"name": "unknown arg", "call": "dfagent.lab.fabric_checks.host_pings", "args": {"x": 1}},
        {"name": "missing arg", "do": "dfagent.lab.link_actions.move_link", "args": {"node": "a"}},
    ]
    (tmp_path / spec.SPEC_FILE).write_text(yaml.safe_dump({"checks": steps}))
    with pytest.raises(TopologyError) as err:
        spec.load(str(tmp_path))
    paths = {p for p, _ in err.value.problems}
    assert paths == {
        "checks[1].call",
        "checks[2].do",
        "checks[3].args",
        "checks[4].node",
        "checks[5].args",
        "checks[6].args",
    }


class FakeRun:
    """Canned outputs per (node, command) instead of a running lab."""

    def __init__(self, outputs: dict[tuple[str, str], str]) -> None:
        self.outputs = outputs

    def run(self, node: str, cmd: str | list[str], timeout: float = 30) -> str:
        return self.outputs[(node, cmd if isinstance(cmd, str) else " ".join(cmd))]


class FakeContext(FakeRun):
    """FakeRun in a lab (checks that read its topology)."""

    def __init__(self, lab: spec.Lab, outputs: dict[tuple[str, str], str]) -> None:
        super().__init__(outputs)
        self.lab = lab


def _fabric(tmp_path: Path) -> spec.Lab:
    fabric_gen.write(tmp_path, fabric_gen.FabricSize(spines=2, leaves=2))
    return spec.load(str(tmp_path))


def _hop(dev: str, family: str = "inet6") -> dict:
    return {"via": {"family": family, "host": "fe80::1"}, "dev": dev, "weight": 1}


def _routes(other_leaf: str, hops: list[dict]) -> str:
    return json.dumps(
        [
            {"dst": "10.0.0.1", **_hop("swp1")},
            {"dst": "10.0.0.2", **_hop("swp2")},
            {"dst": other_leaf, "nexthops": hops},
        ]
    )


ROUTES = "ip -j route show proto bgp"


def test_loopbacks_ecmp_wants_one_inet6_hop_per_spine(tmp_path):
    lab = _fabric(tmp_path)
    good = {
        ("l1", ROUTES): _routes("10.0.1.2", [_hop("swp1"), _hop("swp2")]),
        ("l2", ROUTES): _routes("10.0.1.1", [_hop("swp1"), _hop("swp2")]),
    }
    assert fabric_checks.loopbacks_ecmp(FakeContext(lab, good)) == []
    one_spine = {**good, ("l2", ROUTES): _routes("10.0.1.1", [_hop("swp2")])}
    problems = fabric_checks.loopbacks_ecmp(FakeContext(lab, one_spine))
    assert problems == ["l2: 10.0.1.1 (l1) via ['swp2'], expected ['swp1', 'swp2']"]
    v4_hop = {**good, ("l1", ROUTES): _routes("10.0.1.2", [_hop("swp1"), _hop("swp2", "inet")])}
    problems = fabric_checks.loopbacks_ecmp(FakeContext(lab, v4_hop))
    assert problems == ["l1: 10.0.1.2 next hop(s) on ['swp2'] not via inet6"]


def test_loopbacks_ecmp_without_a_spine_wants_its_routes_gone(tmp_path):
    lab = _fabric(tmp_path)
    after = {
        ("l1", ROUTES): json.dumps(
            [{"dst": "10.0.0.2", **_hop("swp2")}, {"dst": "10.0.1.2", **_hop("swp2")}]
        ),
        ("l2", ROUTES): _routes("10.0.1.1", [_hop("swp2")]),  # still has s1's loopback
    }
    problems = fabric_checks.loopbacks_ecmp(FakeContext(lab, after), without=["s1"])
    assert problems == ["l2: still routes to the loopback of ['s1']"]


def test_evpn_vteps_wants_type3_routes_and_flood_entries(tmp_path):
    lab = _fabric(tmp_path)
    evpn = "vtysh -c 'show bgp l2vpn evpn route type multicast json'"
    type3: dict[str, dict[str, dict[str, object]]] = {
        "10.0.1.1:2": {"[3]:[0]:[32]:[10.0.1.1]": {}},
        "10.0.1.2:2": {"[3]:[0]:[32]:[10.0.1.2]": {}},
    }
    zero = "00:00:00:00:00:00"
    outputs = {
        ("l1", evpn): json.dumps(type3),
        ("l2", evpn): json.dumps({"10.0.1.2:2": type3["10.0.1.2:2"]}),
        ("l1", "bridge -j fdb show dev vxlan100"): json.dumps([{"mac": zero, "dst": "10.0.1.2"}]),
        ("l2", "bridge -j fdb show dev vxlan100"): json.dumps([{"mac": "aa:bb:cc:00:00:01"}]),
    }
    problems = fabric_checks.evpn_vteps(FakeContext(lab, outputs))
    assert problems == [
        "l2: type-3 routes from ['10.0.1.2'], expected ['10.0.1.1', '10.0.1.2']",
        "l2: vxlan100 floods to [], expected ['10.0.1.1']",
    ]


BIRDC = """BIRD 2.0.12 ready.
Name       Proto      Table      State  Since         Info
device1    Device     ---        up     09:15:04.312
rr1        BGP        ---        up     09:15:08.624  Established
rr2        BGP        ---        start  09:15:08.412  Active        Socket: Connection refused
"""


def test_bird_sessions_are_read_from_birdc_show_protocols():
    assert bird_checks.parse_protocols(BIRDC)["rr1"] == ("up", "Established")
    ctx = FakeRun({("hv1", "birdc show protocols"): BIRDC})
    problems = bird_checks.sessions_established(ctx, ["hv1"], ["rr1", "rr2", "rr3"])
    assert problems == [
        "hv1: protocol rr2 is start Active Socket: Connection refused",
        "hv1: protocol rr3 is missing",
    ]
