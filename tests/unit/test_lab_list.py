"""`dfagent lab list`: every shipped lab, each with a one-line description."""

from __future__ import annotations

import json

from click.testing import CliRunner

from dfagent.cli.lab import lab
from dfagent.lab import spec


def test_every_lab_is_listed_with_a_description() -> None:
    res = CliRunner().invoke(lab, ["list", "--json"])
    assert res.exit_code == 0, res.output
    rows = {r["name"]: r["description"] for r in json.loads(res.output)}
    shipped = {p.name for p in spec.LABS_DIR.iterdir() if (p / spec.TOPOLOGY_FILE).is_file()}
    assert set(rows) == shipped and {"linux-router", "linux-router-dsr"} <= shipped
    missing = sorted(n for n, d in rows.items() if not d or d.startswith("(invalid"))
    assert not missing, f"labs without a description: {missing}"
    assert all("\n" not in d for d in rows.values())
