#!/usr/bin/env bash
# The main job end to end on built-in data:
#   train LSTM and GRU → export (ONNX + TFLite, window + step graphs, fp32/fp16/int8) → validate parity
#   → evaluate every variant's accuracy → run windows and a live stream without torch → LSTM vs GRU table.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup_env.sh
. .venv/bin/activate
OUT=${OUT:-demo}
mkdir -p "$OUT"
export TF_CPP_MIN_LOG_LEVEL=2
for task in sum sine bands; do
  for cell in lstm gru; do
    name="$task-$cell"
    echo "== $name"
    edgernn train --task "$task" --cell "$cell" --out "$OUT/runs/$name" --quiet
    edgernn export "$OUT/runs/$name" --out "$OUT/bundles/$name" --format onnx,tflite \
      --quantize fp16,int8-weights,int8-dynamic,int8-static --best-effort  # lists what a format cannot make
    edgernn validate "$OUT/bundles/$name" --checkpoint "$OUT/runs/$name" > "$OUT/validate-$name.txt"
    echo "validate: $(tail -n 1 "$OUT/validate-$name.txt")"
    # evaluate exits 1 when a variant drops beyond the budget; the demo reports it and goes on
    edgernn evaluate "$OUT/bundles/$name" --checkpoint "$OUT/runs/$name" --plot "$OUT/evaluate-$name.png" \
      || echo "evaluate: some variant of $name is over the accuracy budget (see the table above)"
  done
done
echo "== run: windows from the bands test split, then a live stream of sine frames (no torch)"
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
edgernn verify "$OUT/bundles/sine-lstm" | tail -n 1
echo "== LSTM or GRU? (same parameter budget, same split)"
edgernn compare --task bands --out "$OUT/compare-bands" --quiet
echo "== done: runs, bundles, plots and reports are in $OUT/"
