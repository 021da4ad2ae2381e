#!/usr/bin/env bash
# Create .venv (if missing) and install edgernn with everything the tests and the demo need.
# torch is pinned to the CPU build: an unpinned torch pulls a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
python -m pip install --quiet --upgrade pip
python -m pip install --quiet "torch==2.13.0" -e ".[dev,tflite]"
# Public test data nobody here wrote: the aeon wheel ships UCR/UEA .ts files and forecasting CSVs.
# Downloaded (never installed, never imported) into .cache/aeon/; tests read files from inside it.
AEON_VERSION=1.6.0
if [ ! -f ".cache/aeon/aeon-${AEON_VERSION}-py3-none-any.whl" ]; then
  mkdir -p .cache/aeon
  python -m pip download --quiet --no-deps "aeon==${AEON_VERSION}" -d .cache/aeon
fi
