"""Containerlab-format topologies: load, validate (schema + our own checks), resolve.

One file serves containerlab users and our namespace runner. The shared schema is draft-07,
under which `prefixItems` on link endpoints is ignored, so the endpoint rules (`node:iface`,
exactly two per link, existing nodes, no interface used twice) are checked here as well.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from dfagent.lab.errors import TopologyError

# Where the containerlab schema lives: ../shared/schemas beside the checkout, or an override.
SHARED_SCHEMA = Path(__file__).resolve().parents[3] / "shared" / "schemas" / "clab.schema.json"
# A copy ships with the package, for installs without the shared folder beside them;
# tests/unit/test_lab_topology.py keeps it identical to the shared one.
PACKAGED_SCHEMA = Path(__file__).resolve().parent / "schema" / "clab.schema.json"
RUNNABLE_KINDS = {"linux", "bridge", "arista_ceos"}
# An arista_ceos node on the namespace runner: a namespace with FRR for its routing (this
# label names the FRR config, beside containerlab's `startup-config` for real cEOS) and the
# eAPI test switch for the rest of its startup-config (dfagent/lab/ceos.py).
CEOS_KIND = "arista_ceos"
CEOS_FRR_LABEL = "dfagent.frr-conf"
IFACE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$")
FRR_CONF = "/etc/frr/frr.conf"
FRR_DAEMONS = "/etc/frr/daemons"
BIRD_CONF = "/etc/bird/bird.conf"
DEFAULT_FRR_DAEMONS = ("zebra", "bgpd", "staticd")


@dataclass(frozen=True)
class Endpoint:
    node: str
    iface: str


@dataclass(frozen=True)
class Link:
    a: Endpoint
    b: Endpoint


@dataclass
class Node:
    name: str
    kind: str
    image: str = ""
    exec: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    binds: dict[str, Path] = field(default_factory=dict)  # container path -> host file
    frr_daemons: tuple[str, ...] = ()  # empty: no FRR on this node
    sysctls: dict[str, str] = field(default_factory=dict)
    startup_config: Path | None = None  # arista_ceos: the EOS config the runner stands in for
    ns_frr_conf: Path | None = None  # arista_ceos: FRR playing its routing (CEOS_FRR_LABEL)

    @property
    def frr_conf(self) -> Path | None:
        return self.binds.get(FRR_CONF) or self.ns_frr_conf

    @property
    def bird_conf(self) -> Path | None:
        return self.binds.get(BIRD_CONF)


@dataclass
class Topology:
    name: str
    path: Path
    nodes: dict[str, Node]
    links: list[Link]

    @property
    def directory(self) -> Path:
        return self.path.parent


def find_schema() -> Path | None:
    """DFAGENT_CLAB_SCHEMA, else ../shared/schemas beside the checkout, else the copy
    packaged with dfagent."""
    env = os.environ.get("DFAGENT_CLAB_SCHEMA")
    for cand in ([Path(env)] if env else []) + [SHARED_SCHEMA, PACKAGED_SCHEMA]:
        if cand.is_file():
            return cand
    return None


@lru_cache(maxsize=1)
def _validator() -> jsonschema.Draft7Validator | None:
    path = find_schema()
    if path is None:
        return None
    return jsonschema.Draft7Validator(json.loads(path.read_text()))


def _json_path(parts: Any) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def schema_problems(doc: Any) -> list[tuple[str, str]]:
    """Problems the containerlab schema finds, each with its path (empty if no schema here)."""
    validator = _validator()
    if validator is None:
        return []
    problems = []
    for err in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path))):
        msg = err.message if len(err.message) < 200 else err.message[:200] + "…"
        problems.append((_json_path(err.absolute_path), msg))
    return problems


def _merged_node(doc: dict[str, Any], name: str, raw: dict[str, Any] | None) -> dict[str, Any]:
    """containerlab inheritance: defaults < kinds[kind] < groups[group] < node."""
    topo = doc.get("topology") or {}
    raw = raw or {}
    layers = [topo.get("defaults") or {}]
    kind = raw.get("kind") or (topo.get("defaults") or {}).get("kind")
    if kind:
        layers.append((topo.get("kinds") or {}).get(kind) or {})
    if raw.get("group"):
        layers.append((topo.get("groups") or {}).get(raw["group"]) or {})
    layers.append(raw)
    merged: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if key in ("env", "labels", "sysctls") and isinstance(value, dict):
                merged[key] = {**merged.get(key, {}), **value}
            elif key in ("exec", "binds") and isinstance(value, list):
                merged[key] = [*merged.get(key, []), *value]
            else:
                merged[key] = value
    return merged


def _parse_binds(
    node: str, binds: list[Any], base: Path, problems: list[tuple[str, str]]
) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for i, bind in enumerate(binds):
        path = f"topology.nodes.{node}.binds[{i}]"
        parts = str(bind).split(":")
        if len(parts) < 2:
            problems.append((path, f"bind {bind!r} is not host-path:container-path[:mode]"))
            continue
        host = (base / parts[0]).resolve()
        if not host.exists():
            problems.append((path, f"bind source {parts[0]!r} does not exist ({host})"))
            continue
        out[parts[1]] = host
    return out


def _frr_daemons(daemons_file: Path | None) -> tuple[str, ...]:
    """Daemons switched on in an FRR `daemons` file (zebra always runs)."""
    if daemons_file is None:
        return DEFAULT_FRR_DAEMONS
    enabled = ["zebra"]
    for line in daemons_file.read_text().splitlines():
        m = re.match(r"^\s*(\w+d)\s*=\s*yes\b", line)
        if m and m.group(1) not in enabled and m.group(1) != "zebra":
            enabled.append(m.group(1))
    return tuple(enabled)


def parse(doc: Any, path: Path, runnable: bool = True) -> Topology:
    """Validate a loaded document; raise TopologyError with every problem found.

    `runnable=False` validates for containerlab only (any kind it knows, cEOS included).
    """
    problems = schema_problems(doc)
    if not isinstance(doc, dict):
        raise TopologyError(str(path), problems or [("", "top level must be a mapping")])
    name = doc.get("name")
    if not isinstance(name, str) or not name:
        problems.append(("name", "a lab needs a name"))
    topo = doc.get("topology")
    if not isinstance(topo, dict):
        problems.append(("topology", "missing topology section"))
        raise TopologyError(str(path), problems)
    raw_nodes = topo.get("nodes") or {}
    nodes: dict[str, Node] = {}
    if not isinstance(raw_nodes, dict) or not raw_nodes:
        problems.append(("topology.nodes", "a lab needs at least one node"))
        raw_nodes = {}
    for nname, raw in raw_nodes.items():
        if raw is not None and not isinstance(raw, dict):
            continue  # the schema already reported it
        cfg = _merged_node(doc, nname, raw)
        kind = cfg.get("kind")
        where = f"topology.nodes.{nname}"
        if not kind:
            problems.append((f"{where}.kind", "node has no kind (set it or topology.defaults)"))
            continue
        if runnable and kind not in RUNNABLE_KINDS:
            problems.append(
                (
                    f"{where}.kind",
                    f"kind {kind!r} cannot run on the namespace runner "
                    f"(runs: {', '.join(sorted(RUNNABLE_KINDS))})",
                )
            )
        binds = _parse_binds(nname, cfg.get("binds") or [], path.parent, problems)
        frr: tuple[str, ...] = ()
        if FRR_CONF in binds:
            frr = _frr_daemons(binds.get(FRR_DAEMONS))
        startup = ns_frr = None
        if kind == CEOS_KIND and runnable:
            startup, ns_frr = _ceos_files(where, cfg, path.parent, problems)
            frr = DEFAULT_FRR_DAEMONS
        nodes[nname] = Node(
            name=nname,
            kind=str(kind),
            image=str(cfg.get("image", "")),
            exec=[str(c) for c in cfg.get("exec") or []],
            env={str(k): str(v) for k, v in (cfg.get("env") or {}).items()},
            labels={str(k): str(v) for k, v in (cfg.get("labels") or {}).items()},
            binds=binds,
            frr_daemons=frr,
            sysctls={str(k): str(v) for k, v in (cfg.get("sysctls") or {}).items()},
            startup_config=startup,
            ns_frr_conf=ns_frr,
        )
    links = _parse_links(topo.get("links") or [], raw_nodes, problems)
    if problems:
        raise TopologyError(str(path), problems)
    return Topology(name=str(name), path=path, nodes=nodes, links=links)


def _ceos_files(
    where: str, cfg: dict[str, Any], base: Path, problems: list[tuple[str, str]]
) -> tuple[Path | None, Path | None]:
    """The startup-config and the FRR config an arista_ceos node needs on this runner."""
    out: list[Path | None] = []
    for key, what in (
        ("startup-config", "the EOS config the eAPI test switch and the runner play"),
        (f"labels.{CEOS_FRR_LABEL}", "the FRR config standing in for its routing"),
    ):
        raw = cfg.get("startup-config") if key == "startup-config" else None
        if key != "startup-config":
            raw = (cfg.get("labels") or {}).get(CEOS_FRR_LABEL)
        if not raw:
            problems.append((f"{where}.{key}", f"an arista_ceos node here needs {key}: {what}"))
            out.append(None)
            continue
        file = (base / str(raw)).resolve()
        if not file.is_file():
            problems.append((f"{where}.{key}", f"{raw!r} does not exist ({file})"))
            out.append(None)
            continue
        out.append(file)
    return out[0], out[1]


def _parse_links(
    raw_links: Any, raw_nodes: dict[str, Any], problems: list[tuple[str, str]]
) -> list[Link]:
    links: list[Link] = []
    used: dict[tuple[str, str], str] = {}
    if not isinstance(raw_links, list):
        problems.append(("topology.links", "links must be a list"))
        return links
    for i, raw in enumerate(raw_links):
        where = f"topology.links[{i}].endpoints"
        eps = raw.get("endpoints") if isinstance(raw, dict) else None
        if not isinstance(eps, list) or len(eps) != 2:
            problems.append((where, "a link needs exactly two endpoints"))
            continue
        parsed = []
        for j, ep in enumerate(eps):
            epath = f"{where}[{j}]"
            if not isinstance(ep, str) or ep.count(":") != 1:
                problems.append((epath, f"endpoint {ep!r} is not 'node:iface'"))
                continue
            node, iface = ep.split(":")
            if node not in raw_nodes:
                problems.append((epath, f"node {node!r} is not defined in topology.nodes"))
                continue
            if not IFACE_RE.match(iface):
                problems.append((epath, f"interface name {iface!r} is not a valid Linux name"))
                continue
            if (node, iface) in used:
                problems.append((epath, f"{ep} is already used by {used[(node, iface)]}"))
                continue
            used[(node, iface)] = where
            parsed.append(Endpoint(node, iface))
        if len(parsed) == 2:
            links.append(Link(parsed[0], parsed[1]))
    return links


def load(path: Path, runnable: bool = True) -> Topology:
    try:
        text = path.read_text()
    except OSError as exc:
        raise TopologyError(str(path), [("", f"cannot read: {exc.strerror}")]) from exc
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise TopologyError(str(path), [("", f"not valid YAML: {exc}")]) from exc
    return parse(doc, path, runnable)
