"""Read the repository's Dockerfile, so tests rebuild its image's environment from the file
itself (apt packages, pip lines, entrypoint) and the two cannot drift apart."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Stage:
    base: str
    name: str | None
    runs: list[str] = field(default_factory=list)  # RUN lines, continuations joined

    def apt_packages(self) -> list[str]:
        out: list[str] = []
        for run in self.runs:
            for cmd in re.split(r"&&|;", run):
                words = shlex.split(cmd)
                if words[:2] == ["apt-get", "install"]:
                    out += [w for w in words[2:] if not w.startswith("-")]
        return out

    def pip(self, verb: str) -> list[str]:
        """The argv of the stage's ``pip <verb> …`` command."""
        for run in self.runs:
            for cmd in run.split("&&"):
                words = shlex.split(cmd)
                if words[:2] == ["pip", verb]:
                    return words
        raise LookupError(f"no `pip {verb}` in stage {self.name or self.base}")


@dataclass
class Dockerfile:
    stages: list[Stage]
    entrypoint: list[str]
    copies: list[list[str]]

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    def stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)


def parse(path: Path = ROOT / "Dockerfile") -> Dockerfile:
    lines: list[str] = []
    cur = ""
    for raw in path.read_text().splitlines():
        if raw.lstrip().startswith("#") or not raw.strip():
            continue
        cur += raw.rstrip("\\").strip() + " "
        if not raw.rstrip().endswith("\\"):
            lines.append(cur.strip())
            cur = ""
    stages: list[Stage] = []
    entry: list[str] = []
    copies: list[list[str]] = []
    for line in lines:
        op, _, rest = line.partition(" ")
        if op == "FROM":
            words = rest.split()
            stages.append(Stage(words[0], words[2] if len(words) > 2 else None))
        elif op == "RUN":
            stages[-1].runs.append(rest)
        elif op == "ENTRYPOINT":
            entry = json.loads(rest)
        elif op == "COPY":
            copies.append(rest.split())
    return Dockerfile(stages, entry, copies)


def copy_context(dest: Path, root: Path = ROOT) -> None:
    """The build context as `docker build` sends it: the tree minus .dockerignore."""
    patterns = [
        p.strip() for p in (root / ".dockerignore").read_text().splitlines()
        if p.strip() and not p.startswith("#")
    ]  # fmt: skip

    def ignored(rel: str) -> bool:
        return any(
            fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(rel, p.removeprefix("**/"))
            or fnmatch.fnmatch(os.path.basename(rel), p.removeprefix("**/"))
            for p in patterns
        )  # fmt: skip

    def ignore(d: str, names: list[str]) -> set[str]:
        rel = os.path.relpath(d, root)
        return {n for n in names if ignored(os.path.normpath(os.path.join(rel, n)))}

    shutil.copytree(root, dest, ignore=ignore)
