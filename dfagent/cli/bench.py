"""`dfagent bench …`: benchmarks. Each benchmark is a command in its own module."""

from __future__ import annotations

import click


@click.group()
def bench() -> None:
    """Benchmarks: measured figures for the speed and scale targets."""


# Benchmarks register themselves on import (one module each, owned by their feature).
from dfagent.cli import (  # noqa: E402
    bench_agent,  # noqa: F401
    bench_ctflush,  # noqa: F401
    bench_decode,  # noqa: F401
    bench_eapi,  # noqa: F401
    bench_mirror,  # noqa: F401
    bench_paths,  # noqa: F401
    bench_pcc,  # noqa: F401
    bench_pinrate,  # noqa: F401
    bench_reload,  # noqa: F401
    bench_scale,  # noqa: F401
    bench_synflood,  # noqa: F401
)
