"""The committed gRPC stubs are what scripts/gen_proto.sh makes from dfagent.proto now."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STUBS = ("dfagent_pb2.py", "dfagent_pb2.pyi", "dfagent_pb2_grpc.py")


def test_committed_stubs_are_up_to_date(tmp_path: Path) -> None:
    subprocess.run(
        [str(ROOT / "scripts" / "gen_proto.sh"), str(tmp_path)],
        check=True,
        env={**os.environ, "PYTHON": sys.executable},
    )
    stale = [
        name
        for name in STUBS
        if (tmp_path / "dfagent" / "api" / name).read_bytes()
        != (ROOT / "dfagent" / "api" / name).read_bytes()
    ]
    assert not stale, f"stale stubs {stale}: run scripts/gen_proto.sh and commit them"
