"""What ships: the Dockerfile, the systemd unit and the README agree; the package depends on
what its code imports; scapy (a bench's yardstick) is an extra, with a clear message when
missing. The image's environment itself is built and run in tests/lab/test_ship.py."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.dockerfile import ROOT, parse

UNIT = ROOT / "packaging" / "dfagent.service"


def test_the_dockerfile_installs_what_the_agent_calls() -> None:
    df = parse()
    assert df.final.base.startswith("python:") and df.final.base.endswith("-slim-bookworm")
    assert {"libnftables1", "conntrack", "iproute2"} <= set(df.final.apt_packages())
    assert df.entrypoint == ["dfagent", "run", "--config", "/etc/dfagent/dfagent.yaml"]
    assert df.final.pip("install")[-1] == "/wheels/dfagent-*.whl"


def test_the_systemd_unit_runs_what_the_image_runs(tmp_path: Path) -> None:
    unit = UNIT.read_text()
    df = parse()
    start = re.search(r"^ExecStart=(.*)$", unit, re.M)
    assert start and start.group(1).split() == ["/opt/dfagent/bin/" + df.entrypoint[0],
                                                *df.entrypoint[1:]]  # fmt: skip
    assert re.search(r"^Type=simple$", unit, re.M)  # no sd_notify: not Type=notify
    assert re.search(r"^Restart=on-failure$", unit, re.M)
    assert re.search(r"^ExecReload=/bin/kill -HUP \$MAINPID$", unit, re.M)
    # systemd's own checker accepts it once the binary exists
    fake = tmp_path / "bin" / "dfagent"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    local = tmp_path / "dfagent.service"
    local.write_text(unit.replace("/opt/dfagent/bin/dfagent", str(fake)))
    p = subprocess.run(["systemd-analyze", "verify", str(local)],
                       capture_output=True, text=True, check=False)  # fmt: skip
    complaints = [ln for ln in (p.stdout + p.stderr).splitlines() if "dfagent.service" in ln]
    assert complaints == [], complaints


def test_the_readme_shows_the_container_and_the_service() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "--net=host --cap-add NET_ADMIN --cap-add NET_RAW" in readme
    assert "-v /etc/dfagent:/etc/dfagent" in readme
    assert "packaging/dfagent.service" in readme and "systemctl reload dfagent" in readme


def _imported_top_modules() -> set[str]:
    out: set[str] = set()
    for path in (ROOT / "dfagent").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                out |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                out.add(node.module.split(".")[0])
    return out


# distribution → the module it provides, where the names differ
MODULE_OF = {
    "PyYAML": "yaml",
    "pip-nftables": "nftables",
    "protobuf": "google",
    "grpcio": "grpc",
    "grpcio-health-checking": "grpc_health",
    "grpcio-reflection": "grpc_reflection",
    "prometheus-client": "prometheus_client",
}
# declared ahead of the code that imports it: the EOS backend (issue 9) imports pyeapi
AHEAD = {"pyeapi"}


def test_every_dependency_is_imported_by_the_package() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = [re.split(r"[<>=!~ ;\[]", d, maxsplit=1)[0] for d in project["dependencies"]]
    imported = _imported_top_modules()
    unused = [d for d in deps if MODULE_OF.get(d, d) not in imported and d not in AHEAD]
    assert unused == [], f"declared but never imported by dfagent: {unused}"
    assert "scapy" not in " ".join(project["dependencies"])
    assert any(d.startswith("scapy") for d in project["optional-dependencies"]["bench"])


def test_bench_decode_without_scapy_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from dfagent.cli.main import cli

    for name in [m for m in sys.modules if m == "scapy" or m.startswith("scapy.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "scapy", None)  # import scapy → ImportError
    res = CliRunner().invoke(cli, ["bench", "decode", "--seconds", "0.01"])
    assert res.exit_code == 1, res.output
    assert "pip install 'dfagent[bench]'" in res.output
    assert "Traceback" not in res.output
