"""`dfagent config check|show FILE`: validate a dfagent.yaml offline, print what it means.

Exit 0: valid. Exit 2: not valid — every error on its own line, ``FILE: PATH: MESSAGE``,
on stderr; an unreadable file or a YAML syntax error is one such line (with its line number),
never a traceback. Needs no root and touches nothing, so it runs in CI and before a reload.
"""

from __future__ import annotations

import json
import sys

import click
import yaml

from dfagent.config import Config, ConfigError, load, summary, to_dict

EXIT_INVALID = 2


@click.group("config")
def config_group() -> None:
    """Check and show a dfagent.yaml (offline; nothing is applied)."""


def _load_or_exit(path: str, as_json: bool) -> Config:
    try:
        return load(path)
    except ConfigError as exc:
        if as_json:
            click.echo(json.dumps({"file": path, "valid": False, "errors": exc.errors}))
        else:
            for line in exc.errors:
                click.echo(f"{path}: {line}", err=True)
            if len(exc.errors) > 1:
                click.echo(f"{path}: {len(exc.errors)} errors", err=True)
        sys.exit(EXIT_INVALID)


@config_group.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def check(file: str, as_json: bool) -> None:
    """Validate FILE: exit 0 and a one-line summary, or exit 2 and every error with its path."""
    cfg = _load_or_exit(file, as_json)
    if as_json:
        click.echo(json.dumps({"file": file, "valid": True, "summary": summary(cfg)}))
    else:
        click.echo(f"{file}: valid: {summary(cfg)}")


@config_group.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="JSON instead of YAML.")
def show(file: str, as_json: bool) -> None:
    """Print FILE's effective config, every default filled in (exit 2 when it is not valid)."""
    data = to_dict(_load_or_exit(file, as_json))
    if as_json:
        click.echo(json.dumps(data, indent=1))
    else:
        click.echo(yaml.safe_dump(data, sort_keys=False, default_flow_style=False), nl=False)
