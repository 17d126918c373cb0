"""What a lab run created, on disk, written *before* each thing is created.

`down` trusts this record, and also sweeps namespaces that carry our prefix, so a runner that
crashed or was killed half-way through `up` still leaves nothing behind after `down --all`.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path

STATE_DIR = Path(os.environ.get("DFAGENT_LAB_STATE", "/run/dfagent/labs"))
NETNS_PREFIX = "dfl-"


@dataclass
class Process:
    node: str
    name: str  # daemon or service name, unique per node
    argv: list[str]
    pid: int = 0


@dataclass
class LabState:
    name: str
    topology: str
    run_id: str
    status: str = "starting"  # starting | up | stopping
    namespaces: dict[str, str] = field(default_factory=dict)  # node -> netns
    processes: list[Process] = field(default_factory=list)
    run_dir: str = ""

    @classmethod
    def new(cls, name: str, topology: str) -> LabState:
        run_id = secrets.token_hex(2)
        run_dir = str(STATE_DIR / f"{name}-{run_id}")
        return cls(name=name, topology=topology, run_id=run_id, run_dir=run_dir)

    def netns_for(self, node: str) -> str:
        return f"{NETNS_PREFIX}{self.run_id}-{node}"

    @property
    def path(self) -> Path:
        return state_path(self.name)

    def save(self) -> None:
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=1))
        os.replace(tmp, self.path)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)

    def process(self, node: str, name: str) -> Process | None:
        for p in self.processes:
            if p.node == node and p.name == name:
                return p
        return None


def state_path(name: str) -> Path:
    return STATE_DIR / f"{name}.json"


def load_state(name: str) -> LabState | None:
    try:
        raw = json.loads(state_path(name).read_text())
    except FileNotFoundError:
        return None
    procs = [Process(**p) for p in raw.pop("processes", [])]
    return LabState(**raw, processes=procs)


def all_states() -> list[LabState]:
    if not STATE_DIR.is_dir():
        return []
    out = []
    for f in sorted(STATE_DIR.glob("*.json")):
        st = load_state(f.stem)
        if st is not None:
            out.append(st)
    return out
