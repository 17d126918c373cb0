"""`dfagent lab …` (being written)."""

from __future__ import annotations

import click


@click.group()
def lab() -> None:
    """Network-namespace labs described in containerlab format."""
