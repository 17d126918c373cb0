"""`dfagent bench reload`: pinned connections through firewall reloads (`flush ruleset`)."""

from __future__ import annotations

import click

from dfagent.bench.reload import MODES, ReloadBench, format_table
from dfagent.cli.bench import JSON_OPTION, bench, modes_list, run_lab_bench


@bench.command("reload")
@click.option("--connections", "-n", default=400, show_default=True, help="Live connections.")
@click.option("--rounds", default=4, show_default=True, help="Firewall reloads per mode.")
@click.option("--modes", default=",".join(MODES), show_default=True,
              help="Comma-separated: repair (agent reinstalls), include (the firewall config "
              "includes dfagent's table), off (--no-repair).")  # fmt: skip
@JSON_OPTION
def reload_cmd(connections: int, rounds: int, modes: str, as_json: bool) -> None:
    """Hold N connections through lb of the resilient-ecmp lab with a request on each every
    100 ms; reload lb's firewall (`nft -f` of a config starting with `flush ruleset`) and then
    drain or undrain s1, ROUNDS times; count broken connections per mode."""
    wanted = modes_list(modes, MODES)
    run_lab_bench(lambda log: ReloadBench(connections, rounds=rounds, log=log).run(wanted),
                  as_json, format_table)  # fmt: skip
