"""Read PyTorch-layout weights back out of an fp32 window graph written by edgernn.

``edgernn validate`` uses this when no checkpoint is given: the NumPy reference then runs on the
weights the file really holds. The gate reordering is inverted here, independently of how the
writer did it, so a reordering bug shows up as a parity failure rather than cancelling out.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from edgernn.errors import ModelFileError
from edgernn.spec import ModelSpec

# Position of each PyTorch gate block within ONNX's order (LSTM: i o f c; GRU: z r h).
TORCH_FROM_ONNX = {"lstm": (0, 2, 3, 1), "gru": (1, 0, 2)}


def _to_torch_order(w: np.ndarray, cell: str) -> np.ndarray:
    blocks = np.split(w, len(TORCH_FROM_ONNX[cell]), axis=0)
    return np.concatenate([blocks[k] for k in TORCH_FROM_ONNX[cell]], axis=0)


def weights_from_window_onnx(path, spec: ModelSpec) -> dict[str, np.ndarray]:
    model = onnx.load(str(path))
    init = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    out: dict[str, np.ndarray] = {}
    try:
        for layer in range(spec.num_layers):
            W, R, B = init[f"W_ih_l{layer}"], init[f"W_hh_l{layer}"], init[f"b_l{layer}"]  # (D, GH, I) (D, GH, H) (D, 2GH)
            for d, suffix in enumerate(("", "_reverse")[: spec.num_directions]):
                b_ih, b_hh = np.split(B[d], 2)
                out[f"rnn.weight_ih_l{layer}{suffix}"] = _to_torch_order(W[d], spec.cell)
                out[f"rnn.weight_hh_l{layer}{suffix}"] = _to_torch_order(R[d], spec.cell)
                out[f"rnn.bias_ih_l{layer}{suffix}"] = _to_torch_order(b_ih, spec.cell)
                out[f"rnn.bias_hh_l{layer}{suffix}"] = _to_torch_order(b_hh, spec.cell)
        out["head.weight"], out["head.bias"] = init["head_weight"], init["head_bias"]
    except KeyError as e:
        raise ModelFileError(f"{path}: not an fp32 window graph written by edgernn (no initializer {e})") from None
    return out
