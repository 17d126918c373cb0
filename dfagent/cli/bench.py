"""`dfagent bench …`: benchmarks. Each benchmark is a command in its own module."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import click

from dfagent.lab.errors import LabError

Log = Callable[[str], None]
Result = dict[str, Any]


@click.group()
def bench() -> None:
    """Benchmarks: measured figures for the speed and scale targets."""


JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="JSON result on stdout.")


def modes_list(text: str, known: tuple[str, ...] | None = None) -> list[str]:
    """``--modes a,b`` as a list; with ``known``, an unknown (or no) mode is a usage error."""
    wanted = [m.strip() for m in text.split(",") if m.strip()]
    if known is not None:
        unknown = [m for m in wanted if m not in known]
        if unknown or not wanted:
            raise click.UsageError(
                f"unknown mode(s) {', '.join(unknown) or '(none given)'}; known: {', '.join(known)}"
            )
    return wanted


def run_lab_bench(
    work: Callable[[Log], Result],
    as_json: bool,
    table: Callable[[Result], str],
    stoppable: bool = False,
) -> Result:
    """A lab benchmark as every `bench` command runs it: root first, progress on stdout (on
    stderr with --json), a failure as one line and exit 2, then the table or the JSON.
    ``stoppable``: SIGTERM/SIGINT unwind (a stopped run still removes its namespaces and
    restores what it tuned). Returns the result for commands that add to it (a chart)."""
    from dfagent.bench.pcc import root_required

    if stoppable:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        signal.signal(signal.SIGINT, signal.default_int_handler)
    log: Log = (lambda m: click.echo(m, err=True)) if as_json else click.echo
    try:
        root_required()
        result = work(log)
    except (LabError, subprocess.CalledProcessError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    click.echo(json.dumps(result) if as_json else table(result))
    return result


# Benchmarks register themselves on import (one module each, owned by their feature).
from dfagent.cli import (  # noqa: E402
    bench_agent,  # noqa: F401
    bench_churn,  # noqa: F401
    bench_ctflush,  # noqa: F401
    bench_decode,  # noqa: F401
    bench_eapi,  # noqa: F401
    bench_mirror,  # noqa: F401
    bench_mirrorloss,  # noqa: F401
    bench_paths,  # noqa: F401
    bench_pcc,  # noqa: F401
    bench_pinrate,  # noqa: F401
    bench_reload,  # noqa: F401
    bench_restart,  # noqa: F401
    bench_scale,  # noqa: F401
    bench_synflood,  # noqa: F401
    bench_twin,  # noqa: F401
)
