#!/usr/bin/env bash
# Create .venv (if missing) and install edgernn with everything the tests and the demo need.
#
# torch: pinned to 2.13.0. By default pip looks on its configured index (this project's CI machines
# have the CPU build there). On a machine of your own, an unpinned or PyPI torch is the multi-GB
# CUDA build; point TORCH_INDEX_URL at PyTorch's CPU wheel index to get the CPU build instead:
#   TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu bash tools/setup_env.sh
# (or at https://download.pytorch.org/whl/cu126 etc. for a given CUDA build).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
python -m pip install --quiet --upgrade pip
if [ -n "${TORCH_INDEX_URL:-}" ]; then
  # torch (and only torch) from that index; everything else from the usual one
  python -m pip install --quiet "torch==$TORCH_VERSION" --index-url "$TORCH_INDEX_URL"
fi
python -m pip install --quiet "torch==$TORCH_VERSION" -e ".[dev,tflite]"

# ONNX's own backend test vectors for the LSTM/GRU/RNN operators (tests/test_any_onnx.py). The onnx
# wheels up to 1.22 ship them under onnx/backend/test/data/node; newer ones do not. Unpacked into the
# gitignored .cache/onnx-node (EDGERNN_ONNX_NODE_DATA points elsewhere if you have them).
NODE_DATA=.cache/onnx-node
if [ ! -d "$NODE_DATA/onnx/backend/test/data/node/test_lstm_defaults" ]; then
  WHEEL_DIR=$(mktemp -d)
  python -m pip download --quiet --no-deps --only-binary=:all: "onnx==1.22.0" -d "$WHEEL_DIR"
  python - "$WHEEL_DIR" "$NODE_DATA" <<'PY'
import sys, zipfile
from pathlib import Path

wheel = next(Path(sys.argv[1]).glob("onnx-1.22.0-*.whl"))
prefixes = tuple(f"onnx/backend/test/data/node/test_{op}_" for op in ("lstm", "gru", "rnn", "simple_rnn"))
with zipfile.ZipFile(wheel) as z:
    z.extractall(sys.argv[2], [n for n in z.namelist() if n.startswith(prefixes)])
PY
  rm -rf "$WHEEL_DIR"
fi
# Public test data nobody here wrote: the aeon wheel ships UCR/UEA .ts files and forecasting CSVs.
# Downloaded (never installed, never imported) into .cache/aeon/; tests read files from inside it.
AEON_VERSION=1.6.0
if [ ! -f ".cache/aeon/aeon-${AEON_VERSION}-py3-none-any.whl" ]; then
  mkdir -p .cache/aeon
  python -m pip download --quiet --no-deps "aeon==${AEON_VERSION}" -d .cache/aeon
fi
