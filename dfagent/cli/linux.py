"""`dfagent linux …` (issue 4: being written)."""

from __future__ import annotations

import click


@click.group()
def linux() -> None:
    """Linux router datapath: kernel-mode pinning and its cleanup."""
