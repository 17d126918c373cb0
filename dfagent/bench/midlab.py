"""Shared plumbing of the benches on the resilient-ecmp-mid lab (``bench icmp``,
``bench flowlabel``, ``bench udp``): resilient-ecmp with a router ``mid`` between the client
and lb, where ICMP errors are born (a smaller MTU toward the client) and where packets can
be dropped. The lab, events and agent handling are those of ``bench pcc``; each mode runs on
a fresh lab, plain ECMP (no dfagent) first, in the same run.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

from dfagent.bench.pcc import PccBench, _base
from dfagent.lab import runner
from dfagent.lab.errors import LabError

MID_LAB = "resilient-ecmp-mid"
CLIENT4, CLIENT6 = "10.1.0.10", "fd00:1::10"


class LineProc:
    """A helper process in a lab namespace, one JSON object (or word) per line both ways."""

    def __init__(self, bench: PccBench, node: str, module: str, *args: str):
        assert bench.state is not None
        argv = runner.exec_argv(bench.state, node, [sys.executable, "-m", module, *args])
        self.name = f"{node}: {module}"
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )

    def send(self, cmd: str = "", **kw: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps({"cmd": cmd, **kw}) if cmd else "go") + "\n")
        self.proc.stdin.flush()

    def line(self) -> str:
        assert self.proc.stdout is not None
        out = self.proc.stdout.readline()
        if not out:
            raise LabError(f"{self.name} died")
        return out.strip()

    def reply(self) -> dict[str, Any]:
        return dict(json.loads(self.line()))

    def ask(self, cmd: str, **kw: Any) -> dict[str, Any]:
        self.send(cmd, **kw)
        return self.reply()

    def close(self) -> None:
        with contextlib.suppress(BrokenPipeError, OSError):
            self.send("quit")
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class MidBench(PccBench):
    """A :class:`PccBench` on the resilient-ecmp-mid lab; subclasses add what they measure."""

    modes: tuple[str, ...] = ("ecmp", "kernel", "map")

    def __init__(self, connections: int, log: Any = print):
        super().__init__(connections, fresh=0, log=log, rates=False)
        self.lab_name, self.agent_opts = MID_LAB, ()

    @contextlib.contextmanager
    def fresh_lab(self, mode: str) -> Iterator[None]:
        """A fresh lab with dfagent running in ``mode`` (none for ecmp); always removed."""
        self._lab_up()
        try:
            self.prepare(mode)
            if _base(mode) in ("kernel", "map"):
                self._start_agent(mode)
            yield
        finally:
            self._lab_down()

    def prepare(self, mode: str) -> None:
        """Before the agent starts (sysctls of the bench)."""

    def on(self, node: str, *argv: str, check: bool = True, stdin: str | None = None) -> str:
        return self._on(node, list(argv), check=check, stdin=stdin)

    def event(self, event: str, members: frozenset[str], mode: str) -> None:
        """Apply one of bench pcc's events and wait until lb and the agent follow it."""
        self._apply(event, mode, members)
        self._wait_servers(members)
        self._wait_agent(members)

    def run(self, modes: list[str]) -> dict[str, Any]:
        return {"connections": self.n, "lab": self.lab_name,
                "modes": {m: self.measure(m) for m in modes}}  # fmt: skip

    def measure(self, mode: str) -> dict[str, Any]:
        """One mode on a fresh lab (:meth:`fresh_lab`)."""
        raise NotImplementedError


__all__ = ["CLIENT4", "CLIENT6", "MID_LAB", "LineProc", "MidBench"]
