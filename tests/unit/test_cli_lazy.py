"""The `dfagent` command imports a command's module only when it runs (start-up time of
`dfagent flows` and of `dfagent run`)."""

from __future__ import annotations

import subprocess
import sys

import click

from dfagent.cli.main import COMMANDS, cli


def test_every_command_loads_under_its_name() -> None:
    ctx = click.Context(cli)
    for name in COMMANDS:
        cmd = cli.get_command(ctx, name)
        assert cmd is not None and cmd.name == name, name
    assert cli.list_commands(ctx) == sorted(COMMANDS)


def test_a_client_command_imports_no_lab_or_bench_module() -> None:
    code = (
        "import sys\n"
        "from dfagent.cli.main import cli\n"
        "import click\n"
        "cli.get_command(click.Context(cli), 'flows')\n"
        "print(sorted(m for m in sys.modules if m.startswith(('dfagent.lab', 'dfagent.bench',"
        " 'dfagent.cli.bench', 'dfagent.cli.lab'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
