#!/usr/bin/env bash
# Regenerates the Python protobuf and gRPC code under fedseed/v1/ from protos/. CI checks it is current.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-.}
PY=${PYTHON:-.venv/bin/python}
"$PY" -m grpc_tools.protoc -I protos --python_out="$OUT" --pyi_out="$OUT" --grpc_python_out="$OUT" \
  protos/fedseed/v1/coordinator.proto
