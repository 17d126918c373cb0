"""`dfagent run --config FILE`: the agent daemon (see dfagent/agent/run.py)."""

from __future__ import annotations

import logging
import os
import sys

import click


@click.command("run")
@click.option("--config", "config_file", required=True, metavar="FILE",
              help="dfagent.yaml (check it first with `dfagent config check FILE`).")  # fmt: skip
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def run_cmd(config_file: str, verbose: bool) -> None:
    """Run the agent: pin connections to the config's VIPs, serve the control API on its Unix
    socket (`dfagent status`, `drain`, …), until SIGTERM/SIGINT (pins stay in place)."""
    from dfagent.agent.run import run
    from dfagent.api.server import ServeError
    from dfagent.backends.eos.factory import EosSetupError
    from dfagent.backends.eos.session import EosError
    from dfagent.backends.linux.datapath import MarkConflict
    from dfagent.backends.linux.nft import NftError
    from dfagent.backends.linux.state import AgentRunning
    from dfagent.config import ConfigError, load

    try:
        cfg = load(config_file)
    except ConfigError as exc:
        for e in exc.errors:
            click.echo(f"{exc.source}: {e}", err=True)
        sys.exit(2)
    if os.geteuid() != 0:
        click.echo("error: `dfagent run` needs root (CAP_NET_ADMIN): run it as root", err=True)
        sys.exit(1)
    from dfagent.agent import logs

    logs.setup(
        logging.DEBUG if verbose else getattr(logging, cfg.log.level.upper(), logging.INFO),
        cfg.log.format,
    )
    try:
        run(cfg, os.path.abspath(config_file), fixed_log_level=verbose)
    except (
        AgentRunning, MarkConflict, NftError, ServeError, OSError, EosError, EosSetupError,
    ) as exc:  # fmt: skip
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
