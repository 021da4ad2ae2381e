#!/usr/bin/env bash
# Set up (tools/setup_env.sh) and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup_env.sh
. .venv/bin/activate
python -m pytest -q "$@"
