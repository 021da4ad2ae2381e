#!/usr/bin/env bash
# The main job end to end on built-in data: train LSTM and GRU → export (ONNX window + step graphs)
# → validate parity → evaluate accuracy → run windows and a live stream, with no torch in the runner.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup_env.sh
. .venv/bin/activate
OUT=${OUT:-demo}
mkdir -p "$OUT"
for task in sum sine bands; do
  for cell in lstm gru; do
    name="$task-$cell"
    echo "== $name"
    edgernn train --task "$task" --cell "$cell" --out "$OUT/runs/$name" --quiet
    edgernn export "$OUT/runs/$name" --out "$OUT/bundles/$name"
    edgernn validate "$OUT/bundles/$name" --checkpoint "$OUT/runs/$name" > "$OUT/validate-$name.txt"
    tail -n 1 "$OUT/validate-$name.txt"
    edgernn evaluate "$OUT/bundles/$name" --checkpoint "$OUT/runs/$name" --plot "$OUT/evaluate-$name.png"
  done
done
echo "== run: windows from the bands test split, then a live stream of sine frames"
python - "$OUT" <<'PY'
import sys
import numpy as np
from edgernn.datasource import DataSource
out = sys.argv[1]
np.save(f"{out}/bands-windows.npy", DataSource(task="bands").splits().test.x[:5])
np.savetxt(f"{out}/sine-frames.csv", DataSource(task="sine").splits().test.x[0], delimiter=",")
PY
edgernn run "$OUT/bundles/bands-gru" --input "$OUT/bands-windows.npy" --output "$OUT/bands-predictions.jsonl"
head -n 2 "$OUT/bands-predictions.jsonl"
edgernn run "$OUT/bundles/sine-lstm" --stream < "$OUT/sine-frames.csv" | tail -n 3
echo "== done: runs, bundles, plots and reports are in $OUT/"
