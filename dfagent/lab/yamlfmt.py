"""YAML as people write containerlab files: short scalar lists (link endpoints) and small
scalar mappings (labels) in flow style, command lists one per line."""

from __future__ import annotations

from typing import Any

import yaml


class _Dumper(yaml.SafeDumper):
    pass


def _scalar(v: Any) -> bool:
    return isinstance(v, str | int | float | bool) or v is None


def _list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    flow = all(_scalar(v) and " " not in str(v) for v in data) and len(data) <= 3
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


def _dict(dumper: yaml.SafeDumper, data: dict[Any, Any]) -> yaml.Node:
    flow = bool(data) and all(_scalar(v) for v in data.values()) and len(str(data)) < 60
    return dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=flow)


_Dumper.add_representer(list, _list)
_Dumper.add_representer(dict, _dict)


def dump(doc: Any) -> str:
    return yaml.dump(doc, Dumper=_Dumper, sort_keys=False, width=100)
