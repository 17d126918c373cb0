"""Switch profiles: what a platform can do for dfagent, one YAML file per platform.

    prof = load_profile("arista-7050x")          # a name (searched) or a path to a .yaml
    prof.pin_method, prof.capacity, prof.ageing

A profile says how pins are written (``pin_method``), how many fit (``capacity``), who ages
idle pins (``ageing``: the ``switch`` by its own idle timeout, or the ``agent``), whether the
device counts packets per pin (``counters``: eviction by activity), how many pins go in one
request (``max_batch``), what its mirror sends (``mirror.encap``) and how a flow's egress is
known (``egress``: the first is the default). Errors name their path like the config's.

Names are looked up in ``$DFAGENT_PROFILES``, ``/etc/dfagent/switch_profiles``, the
installed ``share/dfagent/switch_profiles`` and the source tree's ``switch_profiles/``.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dfagent.config import ConfigError, _Errors, _number, _section, _text, read_yaml

PLATFORMS = ("eos", "linux")
PIN_METHODS = {"eos": ("directflow", "traffic-policy", "pbr"), "linux": ("nftables",)}
AGEING = ("switch", "agent")
ENCAPS = ("erspan-type-i", "erspan-ii", "erspan-iii", "raw-ip-88be", "gre-ip", "teb", "any")
EGRESS = ("observed", "query")
KEYS = (
    "name", "description", "platform", "pin_method", "capacity", "ageing", "counters",
    "max_batch", "mirror", "egress",
)  # fmt: skip
REQUIRED = ("name", "platform", "pin_method", "capacity", "ageing", "mirror", "egress")


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    platform: str
    pin_method: str
    capacity: int
    ageing: str
    counters: bool
    max_batch: int
    mirror_encap: str
    egress: tuple[str, ...]
    path: str = ""


def search_dirs() -> list[Path]:
    dirs = []
    if os.environ.get("DFAGENT_PROFILES"):
        dirs.append(Path(os.environ["DFAGENT_PROFILES"]))
    dirs.append(Path("/etc/dfagent/switch_profiles"))
    dirs.append(Path(sys.prefix) / "share" / "dfagent" / "switch_profiles")
    dirs.append(Path(__file__).resolve().parents[1] / "switch_profiles")
    return dirs


def find_profile(name: str) -> Path:
    """The file of a profile name or path; ConfigError naming where it looked."""
    if "/" in name or name.endswith((".yaml", ".yml")):
        p = Path(name)
        if p.is_file():
            return p
        raise ConfigError([f"no profile file {name}"], name)
    for d in search_dirs():
        p = d / f"{name}.yaml"
        if p.is_file():
            return p
    known = sorted({p.stem for d in search_dirs() if d.is_dir() for p in d.glob("*.yaml")})
    raise ConfigError(
        [f"no switch profile {name!r} (known: {', '.join(known) or 'none'})"], "profile"
    )


def _choice(err: _Errors, path: str, value: Any, choices: tuple[str, ...]) -> str:
    if value is None:
        return ""
    if value not in choices:
        err.add(path, f"{value!r} is not one of {' | '.join(choices)}")
        return ""
    return str(value)


def parse_profile(data: Any, source: str = "<profile>") -> Profile:
    err = _Errors()
    d = _section(err, "", data, KEYS, REQUIRED)
    if d is None:
        raise ConfigError(err.items, source)
    platform = _choice(err, "platform", d.get("platform"), PLATFORMS)
    methods = PIN_METHODS.get(platform, tuple(m for ms in PIN_METHODS.values() for m in ms))
    pin_method = _choice(err, "pin_method", d.get("pin_method"), methods)
    mirror = _section(err, "mirror", d.get("mirror"), ("encap",), ("encap",)) or {}
    egress_raw = d.get("egress")
    egress: list[str] = []
    if egress_raw is not None and (not isinstance(egress_raw, list) or not egress_raw):
        err.add("egress", "expected a list of observed | query (the first is the default)")
    elif egress_raw is not None:
        for i, e in enumerate(egress_raw):
            if _choice(err, f"egress[{i}]", e, EGRESS):
                egress.append(str(e))
    counters = d.get("counters", False)
    if not isinstance(counters, bool):
        err.add("counters", "expected true or false")
        counters = False
    prof = Profile(
        name=_text(err, "name", d.get("name"), "") or "",
        description=_text(err, "description", d.get("description"), "") or "",
        platform=platform,
        pin_method=pin_method,
        capacity=_number(err, "capacity", d.get("capacity"), 0, "pins", integer=True),
        ageing=_choice(err, "ageing", d.get("ageing"), AGEING),
        counters=counters,
        max_batch=_number(err, "max_batch", d.get("max_batch"), 100, "pins", integer=True),
        mirror_encap=_choice(err, "mirror.encap", mirror.get("encap"), ENCAPS),
        egress=tuple(egress),
        path=source,
    )
    if pin_method == "directflow" and prof.ageing and prof.ageing != "switch":
        err.add("ageing", "directflow flows carry their own idle timeout: switch")
    if err.items:
        raise ConfigError(err.items, source)
    return prof


def load_profile(name: str) -> Profile:
    path = find_profile(name)
    prof = parse_profile(read_yaml(str(path)), source=str(path))
    if "/" not in name and prof.name != name:
        raise ConfigError([f"name: {prof.name!r} differs from the file name {name!r}"], str(path))
    return prof


def all_profiles() -> list[Path]:
    """Every profile file the search path finds (first of each name)."""
    seen: dict[str, Path] = {}
    for d in search_dirs():
        if d.is_dir():
            for p in sorted(d.glob("*.yaml")):
                seen.setdefault(p.stem, p)
    return [seen[k] for k in sorted(seen)]
