#!/usr/bin/env bash
# GPU check (issue 16), under 5 minutes on a one-GPU machine: train a 2x256 LSTM and GRU on CUDA in
# bf16 for a few epochs on the built-in `bands` task (T=100), measure samples/s against the CPU,
# export each run and validate the bundle against the NumPy reference.
#
#   bash tools/gpu_check.sh                 # needs a CUDA build of torch and a GPU
#   GPU_CHECK_DEVICE=cpu GPU_CHECK_HIDDEN=16 GPU_CHECK_SAMPLES=400 GPU_CHECK_WINDOW=20 bash tools/gpu_check.sh
#                                           # the same path on CPU with tiny sizes (what CI-less machines can run)
#
# Last line: "gpu check: passed" or "gpu check: FAILED (...)"; exit 0 / 1 (2: could not start).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
DEVICE=${GPU_CHECK_DEVICE:-cuda}
PRECISION=${GPU_CHECK_PRECISION:-bf16}
HIDDEN=${GPU_CHECK_HIDDEN:-256}
LAYERS=${GPU_CHECK_LAYERS:-2}
SAMPLES=${GPU_CHECK_SAMPLES:-20000}
CPU_SAMPLES=${GPU_CHECK_CPU_SAMPLES:-$(( SAMPLES / 10 > 200 ? SAMPLES / 10 : 200 ))}
WINDOW=${GPU_CHECK_WINDOW:-100}
EPOCHS=${GPU_CHECK_EPOCHS:-4}  # at least 2: the first epoch (warm-up) is not timed
BATCH=${GPU_CHECK_BATCH:-256}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

fail() { echo "gpu check: FAILED ($1)"; exit 1; }

if ! "$PY" - "$DEVICE" <<'PYEOF'
import sys, torch
device = sys.argv[1]
print(f"torch {torch.__version__}, CUDA build {torch.version.cuda}, cuda available {torch.cuda.is_available()}")
if device.startswith("cuda") and not torch.cuda.is_available():
    sys.exit("no CUDA device visible to this torch; install a CUDA build of torch, or set GPU_CHECK_DEVICE=cpu")
if torch.cuda.is_available():
    print("device:", torch.cuda.get_device_name(0))
PYEOF
then
  echo "gpu check: could not start (see above)"
  exit 2
fi

field() {  # field JSON_FILE KEY.KEY...: print one value of a JSON file
  "$PY" -c 'import json,sys; d=json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."): d=d[k]
print(d)' "$1" "$2"
}

summary=()
for cell in lstm gru; do
  common=(--task bands --window "$WINDOW" --cell "$cell" --hidden "$HIDDEN" --layers "$LAYERS"
          --batch-size "$BATCH" --patience 100 --quiet --json)
  echo "== $cell ${LAYERS}x${HIDDEN}: $DEVICE $PRECISION, $EPOCHS epochs of $SAMPLES windows (T=$WINDOW)"
  "$PY" -m edgernn train "${common[@]}" --samples "$SAMPLES" --epochs "$EPOCHS" --device "$DEVICE" \
      --precision "$PRECISION" --out "$WORK/$cell" > "$WORK/$cell.json" || fail "$cell training on $DEVICE"
  fast=$(field "$WORK/$cell.json" hardware.steady_samples_per_s)
  echo "   $(field "$WORK/$cell.json" hardware.device): $fast samples/s in optimizer steps (epochs 2+)," \
       "accuracy $(field "$WORK/$cell.json" test.accuracy)"
  echo "== $cell on CPU fp32 for comparison: 2 epochs of $CPU_SAMPLES windows (the second timed)"
  "$PY" -m edgernn train "${common[@]}" --samples "$CPU_SAMPLES" --epochs 2 --device cpu --precision fp32 \
      --out "$WORK/$cell-cpu" > "$WORK/$cell-cpu.json" || fail "$cell training on cpu"
  slow=$(field "$WORK/$cell-cpu.json" hardware.steady_samples_per_s)
  ratio=$("$PY" -c "print(f'{$fast / $slow:.1f}')")
  echo "   $(field "$WORK/$cell-cpu.json" hardware.device): $slow samples/s; $DEVICE $PRECISION is ${ratio}x"
  echo "== export and validate the $cell bundle (ONNX vs the NumPy reference and PyTorch)"
  "$PY" -m edgernn export "$WORK/$cell" --out "$WORK/$cell-bundle" > "$WORK/$cell-export.txt" \
      || { cat "$WORK/$cell-export.txt"; fail "$cell export"; }
  "$PY" -m edgernn validate "$WORK/$cell-bundle" --checkpoint "$WORK/$cell" > "$WORK/$cell-validate.txt" \
      || { cat "$WORK/$cell-validate.txt"; fail "$cell validation"; }
  tail -n 3 "$WORK/$cell-validate.txt" | sed 's/^/   /'
  summary+=("$cell ${LAYERS}x${HIDDEN} T=$WINDOW batch $BATCH: $DEVICE $PRECISION $fast samples/s, cpu fp32 $slow samples/s (${ratio}x)")
done
echo "== summary (${SECONDS} s)"
printf '%s\n' "${summary[@]}"
echo "gpu check: passed"
