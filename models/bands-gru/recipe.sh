#!/usr/bin/env bash
# How this bundle was made (run from this folder; needs edgernn[export,tflite]).
set -euo pipefail
run=$(mktemp -d)/run
edgernn train --task bands --cell gru --hidden 32 --seed 0 --out "$run" --quiet
edgernn export "$run" --out bundle --format onnx,tflite --quantize fp16,int8-weights,int8-dynamic,int8-static --best-effort
