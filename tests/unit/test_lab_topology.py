"""Topology validation: every problem reported at once, each with its path."""

from pathlib import Path
from typing import Any

import pytest
import yaml

from dfagent.lab import spec, topology
from dfagent.lab.errors import TopologyError

REPO = Path(__file__).resolve().parents[2]


def _parse(doc: dict, base: Path) -> topology.Topology:
    return topology.parse(doc, base / "topo.clab.yml")


def test_schema_is_found():
    assert topology.find_schema() is not None


def test_packaged_schema_matches_the_shared_one():
    if not topology.SHARED_SCHEMA.is_file():
        pytest.skip("../shared/schemas is not beside this checkout")
    assert topology.PACKAGED_SCHEMA.read_bytes() == topology.SHARED_SCHEMA.read_bytes(), (
        "copy ../shared/schemas/clab.schema.json to dfagent/lab/schema/"
    )


def test_valid_topology_parses(tmp_path):
    (tmp_path / "r1").mkdir()
    (tmp_path / "r1" / "frr.conf").write_text("hostname r1\n")
    doc = {
        "name": "t",
        "topology": {
            "kinds": {"linux": {"image": "frr", "exec": ["echo kind"]}},
            "nodes": {
                "r1": {"kind": "linux", "binds": ["r1/frr.conf:/etc/frr/frr.conf"]},
                "h1": {"kind": "linux", "exec": ["echo node"]},
                "sw": {"kind": "bridge"},
            },
            "links": [{"endpoints": ["r1:eth1", "sw:p1"]}, {"endpoints": ["h1:eth1", "sw:p2"]}],
        },
    }
    topo = _parse(doc, tmp_path)
    assert set(topo.nodes) == {"r1", "h1", "sw"}
    assert topo.nodes["r1"].frr_daemons == ("zebra", "bgpd", "staticd")
    assert topo.nodes["r1"].image == "frr"
    assert topo.nodes["h1"].exec == ["echo kind", "echo node"]  # kinds defaults come first
    assert topo.nodes["h1"].frr_daemons == ()
    assert [(lk.a.node, lk.b.iface) for lk in topo.links] == [("r1", "p1"), ("h1", "p2")]


def test_every_problem_is_reported_with_its_path(tmp_path):
    doc = {
        "name": "bad",
        "topology": {
            "nodes": {
                "a": {"kind": "linux", "binds": ["nope/frr.conf:/etc/frr/frr.conf"]},
                "b": {"kind": "nokia_srlinux"},
                "c": {},
            },
            "links": [
                {"endpoints": ["a:eth1", "b:eth1", "a:eth2"]},
                {"endpoints": ["a:eth1", "zz:eth1"]},
                {"endpoints": ["a-eth1", "b:eth2"]},
                {"endpoints": ["a:eth3", "b:eth3"]},
                {"endpoints": ["a:eth3", "b:eth4"]},
            ],
        },
    }
    with pytest.raises(TopologyError) as err:
        _parse(doc, tmp_path)
    paths = {p for p, _ in err.value.problems}
    msgs = str(err.value)
    assert "topology.nodes.a.binds[0]" in paths and "does not exist" in msgs
    assert "topology.nodes.b.kind" in paths and "cannot run" in msgs
    assert "topology.nodes.c.kind" in paths
    assert "topology.links[0].endpoints" in paths and "exactly two" in msgs
    assert "topology.links[1].endpoints[1]" in paths and "'zz' is not defined" in msgs
    assert "topology.links[2].endpoints[0]" in paths and "not 'node:iface'" in msgs
    assert "topology.links[4].endpoints[0]" in paths and "already used" in msgs


def test_schema_errors_come_with_paths(tmp_path):
    doc = {"name": "x", "topology": {"nodes": {"a": {"kind": "ceos"}}}}
    with pytest.raises(TopologyError) as err:
        _parse(doc, tmp_path)
    assert any(p == "topology.nodes.a.kind" for p, _ in err.value.problems)


def test_unreadable_and_invalid_yaml(tmp_path):
    with pytest.raises(TopologyError, match="cannot read"):
        topology.load(tmp_path / "missing.yml")
    bad = tmp_path / "bad.yml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(TopologyError, match="not valid YAML"):
        topology.load(bad)


def test_frr_daemons_file_selects_daemons(tmp_path):
    (tmp_path / "frr.conf").write_text("")
    (tmp_path / "daemons").write_text("bgpd=yes\nospfd=no\nstaticd=yes\nbfdd=yes\n")
    doc = {
        "name": "t",
        "topology": {
            "nodes": {
                "r": {
                    "kind": "linux",
                    "binds": ["frr.conf:/etc/frr/frr.conf", "daemons:/etc/frr/daemons"],
                }
            }
        },
    }
    assert _parse(doc, tmp_path).nodes["r"].frr_daemons == ("zebra", "bgpd", "staticd", "bfdd")


LAB_DIRS = sorted(p.parent for p in (REPO / "labs").glob(f"*/{spec.TOPOLOGY_FILE}"))


@pytest.mark.parametrize("lab_dir", LAB_DIRS, ids=[p.name for p in LAB_DIRS])
def test_shipped_labs_validate(lab_dir):
    lab = spec.load(str(lab_dir))
    assert lab.name == lab_dir.name
    assert lab.checks, "a lab without checks proves nothing"


def test_lab_yaml_problems_are_reported(tmp_path):
    (tmp_path / spec.TOPOLOGY_FILE).write_text(
        yaml.safe_dump({"name": "t", "topology": {"nodes": {"a": {"kind": "linux"}}}})
    )
    (tmp_path / spec.SPEC_FILE).write_text(
        yaml.safe_dump(
            {
                "bogus": 1,
                "services": [{"node": "zz", "name": "x", "cmd": "true"}, {"node": "a"}],
                "checks": [
                    {"name": "no kind"},
                    {"name": "no expect", "node": "a", "cmd": "true"},
                    {"name": "bad node", "stop": {"node": "q", "daemon": "bgpd"}},
                ],
            }
        )
    )
    with pytest.raises(TopologyError) as err:
        spec.load(str(tmp_path))
    paths = {p for p, _ in err.value.problems}
    assert paths >= {
        "bogus",
        "services[0].node",
        "services[1]",
        "checks[0]",
        "checks[1].expect",
        "checks[2].node",
    }


CLAB_FILES = sorted((REPO / "containerlab").glob("*.clab.yml"))


@pytest.mark.parametrize("path", CLAB_FILES, ids=[p.name for p in CLAB_FILES])
def test_containerlab_topologies_validate(path):
    topo = topology.load(path, runnable=False)
    assert topo.links, "a containerlab topology without links"


def test_ceos_runs_with_a_startup_config_and_an_frr_config(tmp_path):
    node: dict[str, Any] = {"kind": "arista_ceos"}
    doc = {"name": "t", "topology": {"nodes": {"sw1": node}}}
    assert topology.parse(doc, tmp_path / "t.clab.yml", runnable=False).nodes["sw1"]
    with pytest.raises(TopologyError) as err:
        topology.parse(doc, tmp_path / "t.clab.yml")
    paths = {p for p, _ in err.value.problems}
    assert paths == {
        "topology.nodes.sw1.startup-config",
        "topology.nodes.sw1.labels.dfagent.frr-conf",
    }, err.value.problems
    node["startup-config"] = "sw1.cfg"
    node["labels"] = {"dfagent.frr-conf": "frr.conf"}
    with pytest.raises(TopologyError, match="'sw1.cfg' does not exist"):
        topology.parse(doc, tmp_path / "t.clab.yml")
    (tmp_path / "sw1.cfg").write_text("hostname sw1\n")
    (tmp_path / "frr.conf").write_text("hostname sw1\n")
    sw1 = topology.parse(doc, tmp_path / "t.clab.yml").nodes["sw1"]
    assert sw1.startup_config == tmp_path / "sw1.cfg"
    assert sw1.frr_conf == tmp_path / "frr.conf" and sw1.frr_daemons == topology.DEFAULT_FRR_DAEMONS
