"""The window graph: ``x[B, T, F] → y[B, O], h_n[L·D, B, H] (, c_n[L·D, B, H])``.

Each layer is one standard ONNX ``LSTM``/``GRU`` node (onnxruntime runs these with fused kernels),
fed with PyTorch's weights reordered into ONNX's gate order. The head reads the top layer's
output at the last step, as ``edgernn.nn`` does.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import onnx

from edgernn.export.graph_builder import DEFAULT_IR_VERSION, DEFAULT_OPSET, GraphBuilder
from edgernn.spec import ModelSpec

# PyTorch stacks LSTM gates as (i, f, g, o), ONNX as (i, o, f, c): take blocks 0, 3, 1, 2.
# PyTorch stacks GRU gates as (r, z, n), ONNX as (z, r, h): take blocks 1, 0, 2.
ONNX_GATE_ORDER = {"lstm": (0, 3, 1, 2), "gru": (1, 0, 2)}


def reorder_gates(w: np.ndarray, cell: str) -> np.ndarray:
    """Reorder the stacked gate blocks along axis 0 from PyTorch's order to ONNX's."""
    blocks = np.split(w, len(ONNX_GATE_ORDER[cell]), axis=0)
    return np.concatenate([blocks[k] for k in ONNX_GATE_ORDER[cell]], axis=0)


def layer_weights(spec: ModelSpec, weights: Mapping[str, np.ndarray], layer: int, prefix: str = "rnn."):
    """ONNX W, R, B for one layer, both directions stacked: (D, G·H, I), (D, G·H, H), (D, 2·G·H)."""
    gh = spec.gates * spec.hidden_size
    W, R, B = [], [], []
    for suffix in ("", "_reverse")[: spec.num_directions]:
        w_ih = weights[f"{prefix}weight_ih_l{layer}{suffix}"]
        w_hh = weights[f"{prefix}weight_hh_l{layer}{suffix}"]
        b_ih = weights.get(f"{prefix}bias_ih_l{layer}{suffix}", np.zeros(gh, np.float32))
        b_hh = weights.get(f"{prefix}bias_hh_l{layer}{suffix}", np.zeros(gh, np.float32))
        W.append(reorder_gates(w_ih, spec.cell))
        R.append(reorder_gates(w_hh, spec.cell))
        B.append(np.concatenate([reorder_gates(b_ih, spec.cell), reorder_gates(b_hh, spec.cell)]))
    as32 = lambda arrays: np.stack(arrays).astype(np.float32)  # noqa: E731
    return as32(W), as32(R), as32(B)


def window_io(spec: ModelSpec) -> tuple[list[tuple[str, list]], list[tuple[str, list]]]:
    """Names and shapes of the window graph's inputs and outputs."""
    state_shape = [spec.num_layers * spec.num_directions, "batch", spec.hidden_size]
    inputs = [("x", ["batch", "time", spec.input_size])]
    outputs = [("y", ["batch", spec.output_size]), ("h_n", state_shape)]
    if spec.has_cell_state:
        outputs.append(("c_n", state_shape))
    return inputs, outputs


def build_window_graph(
    spec: ModelSpec,
    weights: Mapping[str, np.ndarray],
    *,
    ir_version: int = DEFAULT_IR_VERSION,
    opset: int = DEFAULT_OPSET,
) -> onnx.ModelProto:
    g = GraphBuilder(f"edgernn_{spec.cell}_window")
    inputs, outputs = window_io(spec)
    g.declare(inputs, outputs)

    H, D = spec.hidden_size, spec.num_directions
    direction = "bidirectional" if spec.bidirectional else "forward"
    seq = g.op("Transpose", ["x"], "x_time_major", perm=[1, 0, 2])  # (T, B, F)
    flat_shape = g.const("shape_T_B_DH", np.array([0, 0, D * H], np.int64))
    h_finals, c_finals = [], []
    for layer in range(spec.num_layers):
        W, R, B = layer_weights(spec, weights, layer)
        w = g.const(f"W_ih_l{layer}", W)
        r = g.const(f"W_hh_l{layer}", R)
        b = g.const(f"b_l{layer}", B)
        if spec.cell == "lstm":
            y, y_h, y_c = g.op(
                "LSTM", [seq, w, r, b], f"lstm_l{layer}", n_out=3, hidden_size=H, direction=direction
            )
            c_finals.append(y_c)
        else:
            y, y_h = g.op(
                "GRU", [seq, w, r, b], f"gru_l{layer}", n_out=2,
                hidden_size=H, direction=direction, linear_before_reset=1,
            )
        h_finals.append(y_h)  # (D, B, H)
        y = g.op("Transpose", [y], f"y_l{layer}_tbdh", perm=[0, 2, 1, 3])  # (T, B, D, H)
        seq = g.op("Reshape", [y, flat_shape], f"y_l{layer}")  # (T, B, D·H)

    last_index = g.const("last_step", np.array(-1, np.int64))
    last = g.op("Gather", [seq, last_index], "h_last", axis=0)  # (B, D·H)
    head_w = g.const("head_weight", np.asarray(weights["head.weight"], np.float32))  # (O, D·H)
    head_b = g.const("head_bias", np.asarray(weights["head.bias"], np.float32))  # (O,)
    g.op("Gemm", [last, head_w, head_b], "y", transB=1)  # (B, O)
    _concat_or_identity(g, h_finals, "h_n")  # (L·D, B, H)
    if spec.has_cell_state:
        _concat_or_identity(g, c_finals, "c_n")
    return g.build(spec, "window", ir_version=ir_version, opset=opset)


def _concat_or_identity(g: GraphBuilder, names: list[str], out: str) -> None:
    if len(names) == 1:
        g.op("Identity", names, out)
    else:
        g.op("Concat", names, out, axis=0)
