"""containerlab/ files stay in step with the runner's topologies (same nodes, kinds, links,
daemon configs and addresses); generated ones are exactly what `dfagent lab export` writes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from dfagent.lab import containerlab, spec, topology

REPO = Path(__file__).resolve().parents[2]
LABS = sorted(p.parent.name for p in (REPO / "labs").glob(f"*/{spec.TOPOLOGY_FILE}"))


def _runner(name: str) -> topology.Topology:
    return topology.load(REPO / "labs" / name / spec.TOPOLOGY_FILE)


def _clab_path(name: str) -> Path:
    return REPO / "containerlab" / f"{name}.clab.yml"


@pytest.mark.parametrize("name", LABS)
def test_every_lab_has_a_containerlab_file_in_step(name):
    path = _clab_path(name)
    assert path.is_file(), f"no containerlab/{name}.clab.yml: `dfagent lab export {name} --write`"
    clab = topology.load(path, runnable=False)
    assert containerlab.drift(_runner(name), clab) == []


def _generated(name: str) -> bool:
    path = _clab_path(name)
    return path.is_file() and "GENERATED" in path.read_text().split("\nname:")[0]


# hand-written files are checked by the drift test alone (no skipped cases)
GENERATED = [name for name in LABS if _generated(name)]


def test_some_containerlab_files_are_generated():
    assert "unnumbered-fabric" in GENERATED and "resilient-ecmp-dsr" in GENERATED


@pytest.mark.parametrize("name", GENERATED)
def test_generated_containerlab_files_are_current(name):
    path = _clab_path(name)
    assert path.read_text() == containerlab.render(REPO / "labs" / name / spec.TOPOLOGY_FILE), (
        f"stale: run `dfagent lab export {name} --write`"
    )


def _drifted(tmp_path: Path, name: str, mutate) -> topology.Topology:
    """A copy of the lab's containerlab file (binds still resolving), changed by `mutate`."""
    (tmp_path / "containerlab").mkdir()
    shutil.copy(REPO / "containerlab" / "frr-daemons", tmp_path / "containerlab")
    shutil.copytree(REPO / "labs", tmp_path / "labs")
    (tmp_path / "dfagent" / "lab").mkdir(parents=True)
    shutil.copy(REPO / "dfagent" / "lab" / "service.py", tmp_path / "dfagent" / "lab")
    doc = yaml.safe_load(_clab_path(name).read_text())
    mutate(doc)
    path = tmp_path / "containerlab" / f"{name}.clab.yml"
    path.write_text(yaml.safe_dump(doc))
    return topology.load(path, runnable=False)


def _drop_link(doc):
    doc["topology"]["links"].pop()


def _move_endpoint(doc):
    ep = doc["topology"]["links"][0]["endpoints"]
    ep[0] = ep[0].split(":")[0] + ":eth9"


def _rename_node(doc):
    nodes = doc["topology"]["nodes"]
    first = next(iter(nodes))
    nodes["renamed"] = nodes.pop(first)
    for link in doc["topology"]["links"]:
        link["endpoints"] = [e.replace(f"{first}:", "renamed:") for e in link["endpoints"]]


def _change_address(doc):
    for node in doc["topology"]["nodes"].values():
        for i, cmd in enumerate(node.get("exec") or []):
            if cmd.startswith("ip addr add"):
                node["exec"][i] = cmd.replace("ip addr add 1", "ip addr add 2", 1)
                return


@pytest.mark.parametrize("name", LABS)
@pytest.mark.parametrize(
    "mutate,says",
    [
        (_drop_link, "missing from the containerlab file"),
        (_move_endpoint, "not in the runner topology"),
        (_rename_node, "only in the"),
        (_change_address, "addresses missing"),
    ],
    ids=["link dropped", "endpoint moved", "node renamed", "address changed"],
)
def test_a_drifted_copy_fails(tmp_path, name, mutate, says):
    problems = containerlab.drift(_runner(name), _drifted(tmp_path, name, mutate))
    assert any(says in p for p in problems), problems


def test_a_changed_daemon_config_is_drift(tmp_path):
    def swap(doc):
        nodes = doc["topology"]["nodes"]
        binds = nodes["l1"]["binds"]
        nodes["l1"]["binds"] = [b.replace("/l1/", "/l2/") for b in binds]

    problems = containerlab.drift(
        _runner("unnumbered-fabric"), _drifted(tmp_path, "unnumbered-fabric", swap)
    )
    assert any("l1: daemon configs differ" in p for p in problems), problems
