"""`dfagent bench …`: benchmarks. Each benchmark is a command in its own module."""

from __future__ import annotations

import click


@click.group()
def bench() -> None:
    """Benchmarks: measured figures for the speed and scale targets."""


# Benchmarks register themselves on import (one module each, owned by their feature).
import dfagent.cli.bench_mirror  # noqa: E402,F401
import dfagent.cli.bench_pinrate  # noqa: E402,F401
from dfagent.cli import bench_decode  # noqa: E402,F401
from dfagent.cli import bench_pcc  # noqa: E402,F401
