"""A lab's folder: `topology.clab.yml` (containerlab format, shared with containerlab users)
and `lab.yaml` (what only our runner needs: long-running services and the lab's checks).

lab.yaml:
    description: one line for `dfagent lab list`
    services:                       # started after the routing daemons
      - {node: inet, name: web, cmd: [python, -m, dfagent.lab.service, --name, inet]}
    checks:                         # run in order by `dfagent lab check`
      - name: host has two default next hops
        node: host                  # a command whose JSON output must contain `expect`
        cmd: ip -j route show default
        expect: [{dst: default, nexthops: [{gateway: 10.10.0.1}, {gateway: 10.10.0.2}]}]
        exact_lists: true           # lists must have the expected length too
        timeout: 20                 # retried until then (default 30 s)
      - {name: r1 stops BGP, stop: {node: r1, daemon: bgpd}}
      - {name: r1 starts BGP, start: {node: r1, daemon: bgpd}}
      - name: flows spread
        spread: {node: host, addr: 203.0.113.10, port: 8080, connections: 32, min_distinct: 2}
      - name: every loopback reachable from every leaf
        call: dfagent.lab.fabric_checks.loopbacks_ecmp   # a Python check, retried like the rest
        args: {without: [s1]}
      - {name: s1's links down, do: dfagent.lab.link_actions.links_down, args: {node: s1}}

`call` and `do` name a function `f(ctx: StepContext, **args) -> list[str]` (problems; empty
when it holds). `call` is retried until its deadline; `do` runs once (an action). They say
what a fixed list of commands cannot: "one path per spine" for any number of spines, read
from the topology's labels, so a generated lab's checks do not change with its size.
"""

from __future__ import annotations

import importlib
import inspect
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dfagent.lab import topology as topo
from dfagent.lab.errors import LabError, TopologyError

LABS_DIR = Path(__file__).resolve().parents[2] / "labs"
TOPOLOGY_FILE = "topology.clab.yml"
SPEC_FILE = "lab.yaml"
STEP_KINDS = ("cmd", "stop", "start", "spread", "exec", "call", "do")


@dataclass
class Service:
    node: str
    name: str
    cmd: list[str]


@dataclass
class Step:
    name: str
    kind: str  # one of STEP_KINDS
    node: str
    args: dict[str, Any] = field(default_factory=dict)
    timeout: float = 30.0


@dataclass
class Lab:
    topology: topo.Topology
    services: list[Service]
    checks: list[Step]
    description: str = ""

    @property
    def name(self) -> str:
        return self.topology.name


def resolve(ref: str) -> Path:
    """A lab name (a folder under labs/), a lab folder, or a topology file → topology path."""
    path = Path(ref)
    if path.is_file():
        return path.resolve()
    if path.is_dir() and (path / TOPOLOGY_FILE).is_file():
        return (path / TOPOLOGY_FILE).resolve()
    if (LABS_DIR / ref / TOPOLOGY_FILE).is_file():
        return LABS_DIR / ref / TOPOLOGY_FILE
    known = sorted(p.name for p in LABS_DIR.iterdir() if (p / TOPOLOGY_FILE).is_file())
    raise LabError(f"no lab {ref!r}: not a file, a lab folder, or one of {', '.join(known)}")


def load(ref: str) -> Lab:
    path = resolve(ref)
    topology = topo.load(path)
    spec_path = path.parent / SPEC_FILE
    raw: dict[str, Any] = {}
    if spec_path.is_file():
        loaded = yaml.safe_load(spec_path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise TopologyError(str(spec_path), [("", "must be a mapping")])
        raw = loaded
    problems: list[tuple[str, str]] = []
    unknown = set(raw) - {"description", "services", "checks"}
    problems += [(k, "unknown key (known: description, services, checks)") for k in sorted(unknown)]
    services = _services(raw.get("services") or [], topology, problems)
    checks = [_step(i, s, topology, problems) for i, s in enumerate(raw.get("checks") or [])]
    if problems:
        raise TopologyError(str(spec_path), problems)
    description = " ".join(str(raw.get("description") or "").split())
    return Lab(topology, services, [c for c in checks if c is not None], description)


def _services(raw: Any, topology: topo.Topology, problems: list[tuple[str, str]]) -> list[Service]:
    out = []
    for i, s in enumerate(raw):
        where = f"services[{i}]"
        if not isinstance(s, dict) or not {"node", "name", "cmd"} <= set(s):
            problems.append((where, "a service needs node, name and cmd"))
            continue
        if s["node"] not in topology.nodes:
            problems.append((f"{where}.node", f"no node {s['node']!r} in the topology"))
            continue
        cmd = shlex.split(s["cmd"]) if isinstance(s["cmd"], str) else [str(c) for c in s["cmd"]]
        out.append(Service(str(s["node"]), str(s["name"]), cmd))
    return out


def _step(
    i: int, raw: Any, topology: topo.Topology, problems: list[tuple[str, str]]
) -> Step | None:
    where = f"checks[{i}]"
    if not isinstance(raw, dict) or "name" not in raw:
        problems.append((where, "a check needs a name"))
        return None
    kinds = [k for k in STEP_KINDS if k in raw]
    if len(kinds) != 1:
        problems.append((where, f"a check needs exactly one of {', '.join(STEP_KINDS)}"))
        return None
    kind = kinds[0]
    timeout = float(raw.get("timeout", 30))
    if kind == "cmd":
        node, args = (
            raw.get("node"),
            {
                "cmd": raw["cmd"],
                "expect": raw.get("expect"),
                "exact_lists": bool(raw.get("exact_lists", False)),
            },
        )
        if "expect" not in raw:
            problems.append((f"{where}.expect", "a cmd check needs expect"))
    elif kind in ("call", "do"):
        args = {"fn": raw[kind], "args": raw.get("args") or {}}
        problem = _function_problem(raw[kind])
        if problem:
            problems.append((f"{where}.{kind}", problem))
            return None
        if not isinstance(args["args"], dict):
            problems.append((f"{where}.args", "args must be a mapping"))
            return None
        try:  # the arguments fit the function: known now, not half-way through the checks
            inspect.signature(resolve_function(raw[kind])).bind(None, **args["args"])
        except TypeError as exc:
            problems.append((f"{where}.args", f"{raw[kind]}: {exc}"))
            return None
        node = args["args"].get("node")
        if node is None:  # a function may look at the whole lab
            return Step(str(raw["name"]), kind, "", args, timeout)
    else:
        args = raw[kind] if isinstance(raw[kind], dict) else {}
        node = args.get("node")
    if node not in topology.nodes:
        problems.append((f"{where}.node", f"no node {node!r} in the topology"))
        return None
    return Step(str(raw["name"]), kind, str(node), args, timeout)


def resolve_function(dotted: Any) -> Any:
    """`package.module.function` → the function (raises LabError if there is none)."""
    module, _, name = str(dotted).rpartition(".")
    try:
        fn = getattr(importlib.import_module(module), name, None) if module else None
    except ImportError as exc:
        raise LabError(f"cannot import {module!r}: {exc}") from exc
    if not callable(fn):
        raise LabError(f"{dotted!r} is not a function (give package.module.function)")
    return fn


def _function_problem(dotted: Any) -> str:
    try:
        resolve_function(dotted)
    except LabError as exc:
        return str(exc)
    return ""
