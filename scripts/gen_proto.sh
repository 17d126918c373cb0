#!/bin/sh
# Regenerate the committed gRPC stubs from dfagent/api/dfagent.proto.
# Usage: scripts/gen_proto.sh [OUTDIR]   (default: the repository root, i.e. in place)
# The proto is compiled from the repository root so the stubs import each other as
# `dfagent.api.dfagent_pb2` (protoc names imports after the path given to it).
# tests/unit/test_api_stubs.py runs this into a temp dir and fails if the output differs.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root}
python=${PYTHON:-$root/.venv/bin/python}
[ -x "$python" ] || python=python3
cd "$root"
mkdir -p "$out"
"$python" -m grpc_tools.protoc -I . \
    --python_out="$out" --pyi_out="$out" --grpc_python_out="$out" \
    dfagent/api/dfagent.proto
