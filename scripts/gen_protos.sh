#!/usr/bin/env bash
# Regenerates the Python code for protos/ into orderengine/v1/ (generated
# only: never edit it by hand; the client distribution ships it, and the
# server's uses it). CI runs this and fails on any diff.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
out=orderengine/v1
rm -f "$out"/*_pb2*.py "$out"/*_pb2*.pyi
"$PY" -m grpc_tools.protoc -I protos --python_out=. --pyi_out=. protos/orderengine/v1/*.proto
# Service stubs only for the files that declare a service: the others' would be empty.
mapfile -t services < <(grep -l '^service ' protos/orderengine/v1/*.proto)
"$PY" -m grpc_tools.protoc -I protos \
  --grpc_python_out=. \
  --plugin=protoc-gen-mypy_grpc="$(dirname "$PY")/protoc-gen-mypy_grpc" --mypy_grpc_out=. --mypy_grpc_opt=quiet \
  "${services[@]}"
printf '"""Generated from protos/orderengine/v1 by scripts/gen_protos.sh. Do not edit."""\n' > "$out/__init__.py"
# Typed: the .pyi stubs above reach the client distribution's users (PEP 561).
: > "$out/py.typed"
