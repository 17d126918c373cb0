"""The container image's environment, built from the Dockerfile on this machine (Docker
cannot run here) and run against a lab router.

What the Dockerfile does, done here from the file itself: the build context (the tree minus
.dockerignore) is copied, the build stage's `pip wheel` line builds the wheel (C decoder
included), the final stage's `pip install` line installs it into a fresh venv (the image's
Python is the base image's, so the host's must be the same version), the final stage's apt
packages must be on this machine. Then the ENTRYPOINT runs on lb of the resilient-ecmp lab
with nothing but that venv and /usr/sbin on PATH and /etc/dfagent mapped to a folder (as
`docker run -v /etc/dfagent:/etc/dfagent` does); `dfagent status` from the venv answers over
the API socket, the metrics endpoint answers, SIGTERM stops it with exit 0.
"""

from __future__ import annotations

import glob
import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dfagent.lab.state import LabState
from tests.dockerfile import copy_context, parse
from tests.lab.lb_agent import free_port, http_get, in_lb, lab_up, tmp, wait_for

pytestmark = pytest.mark.lab
__all__ = ["lab_up", "tmp"]  # the fixtures, used by name (tmp: /work of the "image")


def run(
    argv: list[str], timeout: float = 60, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    p = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=timeout, cwd=cwd)
    assert p.returncode == 0, (argv, p.stdout[-3000:], p.stderr[-3000:])
    return p


def test_the_image_environment_runs_the_entrypoint_on_a_lab_router(
    tmp: Path, lab_up: LabState
) -> None:
    df = parse()
    base = df.final.base
    m = re.match(r"python:(\d+\.\d+)-slim-(\w+)$", base)
    assert m, base
    assert f"{sys.version_info.major}.{sys.version_info.minor}" == m.group(1), (
        f"the image runs Python {m.group(1)}: test with that version"
    )
    missing = [
        p for p in df.final.apt_packages()
        if "install ok installed" not in run(["dpkg-query", "-W", "-f=${Status}", p]).stdout
    ]  # fmt: skip
    assert missing == [], f"the image's Debian packages, missing here: {missing}"

    # COPY . /src; pip wheel … /src (build stage); pip install /wheels/dfagent-*.whl (final)
    paths = {"/src": str(tmp / "src"), "/wheels": str(tmp / "wheels")}
    assert [".", "/src"] in df.copies and ["--from=build", "/wheels", "/wheels"] in df.copies

    def here(argv: list[str]) -> list[str]:
        out = []
        for w in argv:
            for image_path, local in paths.items():
                if w == image_path or w.startswith(image_path + "/"):
                    w = local + w[len(image_path) :]
            out.append(w)
        return out

    copy_context(tmp / "src")
    assert not (tmp / "src" / ".venv").exists()
    assert not glob.glob(str(tmp / "src" / "dfagent" / "wire" / "*.so"))
    run([sys.executable, "-m", "venv", str(tmp / "venv")])
    venv_bin = tmp / "venv" / "bin"
    pip = [str(venv_bin / "python"), "-m", "pip"]
    wheel = here(df.stage("build").pip("wheel"))
    run([*pip, *wheel[1:]], timeout=600)
    install = here(df.final.pip("install"))
    install = [a for w in install for a in (sorted(glob.glob(w)) if "*" in w else [w])]
    run([*pip, *install[1:]], timeout=900)
    py = str(venv_bin / "python")
    # from the image's folder: `python -c` puts the working directory first on sys.path
    where = run([py, "-c", "import dfagent.wire._fastsyn as f; print(f.__file__)"], cwd=tmp)
    assert str(tmp / "venv") in where.stdout, where.stdout  # the wheel, not this tree
    # only what the code imports: scapy is no dependency of the image
    scapy = run([py, "-c", "import importlib.util as u; print(u.find_spec('scapy'))"])
    assert scapy.stdout == "None\n", scapy.stdout

    # the /etc/dfagent volume, the state and run volumes in the image's folder too
    etc = tmp / "etc"
    etc.mkdir()
    sock = str(tmp / "run" / "dfagent.sock")
    port = free_port(lab_up)
    (etc / "dfagent.yaml").write_text(
        yaml.safe_dump(
            {
                "vips": [{"prefix": "1.1.1.1/32", "mode": "kernel"},
                         {"prefix": "2001:db8::1/128", "mode": "kernel"}],
                "linux": {"state_dir": str(tmp / "state")},
                "nexthops": {f"s{n}": [f"10.2.{n}.2", f"fd00:2:{n}::2"] for n in (1, 2, 3)},
                "drain": {"actuator": "none"},
                "api": {"socket": sock},
                "metrics": {"address": f"127.0.0.1:{port}"},
                "log": {"format": "json"},
            }
        )
    )  # fmt: skip
    volume = "/etc/dfagent"
    entry = [w.replace(volume, str(etc), 1) if w.startswith(volume) else w for w in df.entrypoint]
    assert entry[0] == "dfagent" and entry != df.entrypoint
    env = {"PATH": f"{venv_bin}:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(tmp)}
    argv = ["env", "-i", *(f"{k}={v}" for k, v in env.items()), *entry]
    log_path = tmp / "agent.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", lab_up.namespaces["lb"], *argv],
            stdout=log, stderr=subprocess.STDOUT, cwd=tmp,
        )  # fmt: skip
    dfagent = str(venv_bin / "dfagent")
    try:

        def status() -> dict[str, object] | None:
            p = subprocess.run([dfagent, "status", "--json", "--socket", sock],
                               capture_output=True, text=True, check=False)  # fmt: skip
            return json.loads(p.stdout) if p.returncode == 0 else None

        def ready() -> bool:
            st = status()
            return st is not None and st["nexthops"]["active"] == 6  # type: ignore[index]

        wait_for(
            ready,
            "the image's agent answering `dfagent status`",
            check=lambda: None if proc.poll() is None else log_path.read_text(),
            show=status,
        )
        st = status()
        assert st is not None and st["mode"] == "kernel" and st["healthy"] is True, st
        code, body = http_get(lab_up, f"http://127.0.0.1:{port}/metrics")
        assert code == 200 and 'dfagent_info{backend="linux",mode="kernel"' in body, body[:500]
        print(f"image environment: status {st}")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0, log_path.read_text()
        lines = [json.loads(line) for line in log_path.read_text().splitlines()]
        events = [(x["component"], x["event"]) for x in lines]
        assert ("dfagent.linux", "start") in events and ("dfagent.agent", "stop") in events
        assert next(x for x in lines if x["event"] == "start")["mode"] == "kernel"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        in_lb(lab_up, [dfagent, "linux", "cleanup", "--state-dir", str(tmp / "state")])
