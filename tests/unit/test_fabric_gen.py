"""The unnumbered-fabric generator: the shipped lab is its output, and growing the fabric
changes only the new node's config and the topology file."""

from __future__ import annotations

import filecmp
from pathlib import Path

import pytest

from dfagent.lab import containerlab, fabric_gen, spec

REPO = Path(__file__).resolve().parents[2]


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_shipped_lab_is_the_generator_output(tmp_path):
    fabric_gen.write(tmp_path, fabric_gen.FabricSize())
    shipped = REPO / "labs" / fabric_gen.LAB_NAME
    assert _tree(tmp_path) == _tree(shipped), (
        "labs/unnumbered-fabric differs from the generator: run `dfagent lab generate "
        "unnumbered-fabric`"
    )
    clab = REPO / "containerlab" / f"{fabric_gen.LAB_NAME}.clab.yml"
    assert clab.read_text() == containerlab.render(shipped / spec.TOPOLOGY_FILE)


def test_one_more_leaf_changes_only_its_config_and_the_topology(tmp_path):
    three, four = tmp_path / "three", tmp_path / "four"
    fabric_gen.write(three, fabric_gen.FabricSize(spines=2, leaves=3))
    fabric_gen.write(four, fabric_gen.FabricSize(spines=2, leaves=4))
    a, b = _tree(three), _tree(four)
    added = sorted(set(b) - set(a))
    changed = sorted(k for k in set(a) & set(b) if a[k] != b[k])
    assert added == ["l4/frr.conf"]
    assert changed == [spec.TOPOLOGY_FILE]
    assert sorted(set(a) - set(b)) == []


def test_regenerating_in_place_removes_configs_of_nodes_that_went(tmp_path):
    fabric_gen.write(tmp_path, fabric_gen.FabricSize(spines=2, leaves=4))
    fabric_gen.write(tmp_path, fabric_gen.FabricSize(spines=2, leaves=3))
    fresh = tmp_path.parent / "fresh"
    fabric_gen.write(fresh, fabric_gen.FabricSize(spines=2, leaves=3))
    cmp = filecmp.dircmp(tmp_path, fresh)
    assert not cmp.left_only and not cmp.diff_files


@pytest.mark.parametrize("spines,leaves", [(1, 1), (2, 3), (4, 16)])
def test_generated_labs_validate(tmp_path, spines, leaves):
    fabric_gen.write(tmp_path, fabric_gen.FabricSize(spines, leaves))
    lab = spec.load(str(tmp_path))
    roles = [n.labels["role"] for n in lab.topology.nodes.values()]
    assert roles.count("spine") == spines and roles.count("leaf") == leaves
    assert roles.count("host") == leaves
    assert len(lab.topology.links) == spines * leaves + leaves
    assert [s.kind for s in lab.checks].count("call") >= 4


def test_configs_are_unnumbered_with_loopback_only():
    conf = fabric_gen.leaf_conf(2, fabric_gen.FabricSize())
    assert "neighbor swp1 interface peer-group FABRIC" in conf
    assert "network 10.0.1.2/32" in conf and "advertise-all-vni" in conf
    assert "frr defaults datacenter" in conf
    spine = fabric_gen.spine_conf(1, fabric_gen.FabricSize())
    assert "advertise-all-vni" not in spine
    assert spine.count(" interface peer-group FABRIC") == fabric_gen.SPINE_PORTS
    # no numbered fabric address anywhere: only loopbacks
    topo = fabric_gen.topology_doc(fabric_gen.FabricSize())["topology"]["nodes"]
    for name, node in topo.items():
        adds = [c for c in node["exec"] if c.startswith("ip addr add")]
        if name.startswith(("s", "l")):
            assert adds == [f"ip addr add {node['labels']['loopback']}/32 dev lo"]


def test_size_limits():
    assert fabric_gen.FabricSize(0, 3).problems()
    assert fabric_gen.FabricSize(2, 255).problems()
    assert not fabric_gen.FabricSize(4, 16).problems()
