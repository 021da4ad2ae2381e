"""Check that onnxruntime folds int8-weights files to float32 when a session loads them.

    python tools/check_fold.py bundle/model.int8-weights.onnx bundle/model.step.int8-weights.onnx

Run it with the onnxruntime to check (it needs ``onnx`` too, to read the session-optimized model):
e.g. in a venv with ``onnxruntime==1.16.3 onnx numpy<2`` and this repository on PYTHONPATH. For each
file it saves the session-optimized model and lists any ``Cast``/``Mul``/``DequantizeLinear`` left
on an int8 weight (``edgernn.quantize.weight_only.folded_nodes``). Exits 1 if any file keeps one.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgernn.quantize.weight_only import folded_nodes  # noqa: E402


def main(paths: list[str]) -> int:
    import onnxruntime

    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for i, path in enumerate(paths):
            left = folded_nodes(Path(path).read_bytes(), str(Path(tmp) / f"{i}.onnx"))
            failed += bool(left)
            print(f"{path}: " + ("folded at load" if not left else f"NOT folded: {', '.join(left)}"))
    print(f"onnxruntime {onnxruntime.__version__}: {len(paths) - failed} of {len(paths)} files folded")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
