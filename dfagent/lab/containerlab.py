"""containerlab/ files: made from the runner's topologies, and checked not to drift from them.

`render` turns a runner lab (labs/NAME/topology.clab.yml + lab.yaml) into the containerlab
file for Docker users: binds rewritten relative to containerlab/, FRR nodes get the shared
`frr-daemons` file, BIRD nodes a BIRD image, services become the container's command, and
nodes that route or set a default route drop Docker's default via eth0 first (it would beat
the lab's). `drift` compares a containerlab file with its runner topology — same nodes and
kinds, same links, same daemon configs, same addresses — for hand-written files too.
"""

from __future__ import annotations

import os
import re
import shlex
import textwrap
from pathlib import Path

import yaml

from dfagent.lab import spec, yamlfmt
from dfagent.lab import topology as topo
from dfagent.lab.errors import LabError

CONTAINERLAB_DIR = spec.LABS_DIR.parent / "containerlab"
FRR_IMAGE = "quay.io/frrouting/frr:8.4.4"
# Alpine + BIRD 2 + iproute2 (github.com/srl-labs/bird-container); its entrypoint expects
# /etc/bird.conf, so ours names the config the runner binds.
BIRD_IMAGE = "ghcr.io/srl-labs/bird:latest"
BIRD_ENTRYPOINT = "bird -d -c /etc/bird/bird.conf"
DAEMONS_FILE = "frr-daemons"
SERVICE_BIND = "../dfagent/lab/service.py:/service.py:ro"
DEL_DEFAULT = "ip route del default"
RUNNER_ONLY = "dfagent.lab.ctsync"
_ADDR = re.compile(r"^ip (?:-[46] )?addr(?:ess)? add (\S+)(?: peer (\S+))? dev (\S+)")


def _rel(path: Path, start: Path) -> str:
    return os.path.relpath(path, start)


def render(topology_path: Path, out_dir: Path = CONTAINERLAB_DIR) -> str:
    """The containerlab file for the runner lab at `topology_path`, as text."""
    lab_dir = topology_path.parent
    doc = yaml.safe_load(topology_path.read_text())
    lab = spec.load(str(topology_path))
    # runner-only services (conntrackd for twin-lb: not in the FRR image) are named in the
    # header instead of exported
    skipped = [s for s in lab.services if s.cmd[1:3] == ["-m", RUNNER_ONLY]]
    services = {s.node: s for s in lab.services if s not in skipped}
    tnodes = doc["topology"]["nodes"]
    for name, node in lab.topology.nodes.items():
        raw = tnodes[name] = dict(tnodes.get(name) or {})
        if node.kind == topo.CEOS_KIND:  # real cEOS: its startup-config, not our stand-ins
            if raw.get("startup-config"):
                raw["startup-config"] = _rel(lab_dir / raw["startup-config"], out_dir)
            labels = {k: v for k, v in (raw.get("labels") or {}).items()
                      if k != topo.CEOS_FRR_LABEL}  # fmt: skip
            raw.pop("labels", None)
            raw.pop("sysctls", None)  # the runner's Linux ECMP hash; EOS hashes on its own
            if labels:
                raw["labels"] = labels
            continue
        if node.kind != "linux":
            continue
        binds = []
        for bind in raw.get("binds") or []:
            host, _, rest = str(bind).partition(":")
            binds.append(f"{_rel(lab_dir / host, out_dir)}:{rest}")
        if node.frr_conf is not None and topo.FRR_DAEMONS not in node.binds:
            binds.append(f"{DAEMONS_FILE}:{topo.FRR_DAEMONS}")
        svc = services.get(name)
        if svc is not None:
            binds.append(SERVICE_BIND)
            if svc.cmd[1:3] != ["-m", "dfagent.lab.service"]:
                raise LabError(f"{name}: only dfagent.lab.service exports, not {svc.cmd}")
            argv = ["python3", "/service.py", *svc.cmd[3:]]  # the module, bound in as a file
            if node.frr_conf is not None:
                raw["cmd"] = f"sh -c '/usr/lib/frr/docker-start & exec {shlex.join(argv)}'"
            else:
                raw["cmd"] = shlex.join(argv)
        if node.bird_conf is not None:
            raw["image"] = BIRD_IMAGE
            raw["entrypoint"] = BIRD_ENTRYPOINT
        if binds:
            raw["binds"] = binds
        routes = node.frr_conf is not None or node.bird_conf is not None
        if routes or any("route add default" in c for c in node.exec):
            raw["exec"] = [DEL_DEFAULT, *(raw.get("exec") or [])]
    bridges = [n for n, node in lab.topology.nodes.items() if node.kind == "bridge"]
    rel_topo = _rel(topology_path, out_dir)
    head = [
        f"# {lab.name} for containerlab (Docker users); GENERATED from {rel_topo}",
        f"# by `dfagent lab export {lab.name} --write`; a unit test fails if the two drift apart.",
    ]
    head += [f"# {line}" for line in textwrap.wrap(lab.description, 92)]
    if bridges:
        head.append("# Before deploying, create the L2 segments (containerlab's bridge kind):")
        head += [
            f"#   sudo ip link add {b} type bridge && sudo ip link set {b} up" for b in bridges
        ]
    for svc in skipped:
        head.append(
            f"# Not exported: {svc.node}'s {svc.name} (`{shlex.join(['python3', *svc.cmd[1:]])}`"
            " on the runner); the FRR image lacks it: install it and run it by hand."
        )
    head.append(f"# Deploy: sudo containerlab deploy -t containerlab/{lab.name}.clab.yml")
    body = yamlfmt.dump(doc)
    return "\n".join(head) + "\n" + body


def _addresses(node: topo.Node) -> set[tuple[str, str, str]]:
    out = set()
    for line in node.exec:
        m = _ADDR.match(line.strip())
        if m:
            out.add((m.group(1), m.group(2) or "", m.group(3)))
    return out


def _configs(node: topo.Node) -> dict[str, bytes]:
    keys = (topo.FRR_CONF, topo.BIRD_CONF)
    return {k: node.binds[k].read_bytes() for k in keys if k in node.binds}


def drift(runner: topo.Topology, clab: topo.Topology) -> list[str]:
    """How a containerlab topology differs from its runner topology (empty: in step)."""
    problems = []
    if runner.name != clab.name:
        problems.append(f"name: {clab.name!r}, runner has {runner.name!r}")
    for name in sorted(set(runner.nodes) ^ set(clab.nodes)):
        where = "runner" if name in runner.nodes else "containerlab file"
        problems.append(f"node {name}: only in the {where}")
    for name in sorted(set(runner.nodes) & set(clab.nodes)):
        r, c = runner.nodes[name], clab.nodes[name]
        if r.kind != c.kind:
            problems.append(f"node {name}: kind {c.kind!r}, runner has {r.kind!r}")
        if _configs(r) != _configs(c):
            problems.append(f"node {name}: daemon configs differ ({sorted(_configs(c))})")
        if _addresses(r) != _addresses(c):
            gone, extra = _addresses(r) - _addresses(c), _addresses(c) - _addresses(r)
            problems.append(f"node {name}: addresses missing {sorted(gone)}, extra {sorted(extra)}")

    def links(t: topo.Topology) -> set[frozenset[str]]:
        return {
            frozenset((f"{lk.a.node}:{lk.a.iface}", f"{lk.b.node}:{lk.b.iface}")) for lk in t.links
        }

    for lk in sorted(links(runner) - links(clab), key=sorted):
        problems.append(f"link {' -- '.join(sorted(lk))}: missing from the containerlab file")
    for lk in sorted(links(clab) - links(runner), key=sorted):
        problems.append(f"link {' -- '.join(sorted(lk))}: not in the runner topology")
    return problems
