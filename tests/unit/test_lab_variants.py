"""Lab variants stay variants: egress-ecmp-active-backup has egress-ecmp's nodes, links and
addresses, and differs only in the gateways' configs (its gateway policy)."""

from __future__ import annotations

from pathlib import Path

from dfagent.lab import containerlab, spec, topology

LABS = Path(__file__).resolve().parents[2] / "labs"


def test_active_backup_differs_from_egress_ecmp_only_in_the_gateway_configs():
    base = topology.load(LABS / "egress-ecmp" / spec.TOPOLOGY_FILE)
    variant = topology.load(LABS / "egress-ecmp-active-backup" / spec.TOPOLOGY_FILE)
    problems = containerlab.drift(base, variant)
    assert problems[0].startswith("name:")
    assert [p.split(":")[0] for p in problems[1:]] == ["node r1", "node r2"], problems
    assert all("daemon configs differ" in p for p in problems[1:])
    for gw, med in (("r1", 10), ("r2", 20)):
        conf = variant.nodes[gw].frr_conf
        assert conf is not None and f"redistribute static metric {med}" in conf.read_text()
