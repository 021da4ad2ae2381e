#!/usr/bin/env bash
# Rebuild the example bundles in models/ from their recipes (each models/NAME/recipe.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
. .venv/bin/activate
for recipe in models/*/recipe.sh; do
  dir=$(dirname "$recipe")
  echo "== $dir"
  (cd "$dir" && bash recipe.sh)
done
