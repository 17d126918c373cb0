"""`dfagent decode FILE` (issue 3: being written)."""

from __future__ import annotations

import click


@click.command()
@click.argument("path")
def decode(path: str) -> None:
    """Decode mirrored SYNs from a pcap or hex file."""
    raise click.ClickException("decode: not implemented yet")
