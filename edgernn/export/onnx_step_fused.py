"""The step graph as one-step fused ops: each layer is an ONNX ``LSTM``/``GRU`` node run for a single
time step with the state passed in and out explicitly.

``x_t[B, F], h_in[L, B, H] (, c_in[L, B, H]) → y[B, O], h_out[L, B, H] (, c_out[L, B, H])``

The same inputs, outputs and state contract as the elementary-op step graph of
``edgernn.export.onnx_step``, but each layer is one node onnxruntime runs with its fused kernel
instead of a dozen elementary ones (faster per step: docs/design.md, "Measurements behind the
code"). The weights are the window graph's, under the same initializer names
(``W_ih_l0``, ``W_hh_l0``, ``b_l0``, ``head_weight``, ``head_bias``), so a quantizer that
rounds them the same way in both graphs keeps stepping equal to the window.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import onnx

from edgernn.export.graph_builder import DEFAULT_IR_VERSION, DEFAULT_OPSET
from edgernn.export.onnx_step import state_outputs, step_scaffold
from edgernn.export.onnx_window import layer_weights
from edgernn.spec import ModelSpec


def build_fused_step_graph(
    spec: ModelSpec,
    weights: Mapping[str, np.ndarray],
    *,
    ir_version: int = DEFAULT_IR_VERSION,
    opset: int = DEFAULT_OPSET,
) -> onnx.ModelProto:
    g, x, hs, cs = step_scaffold(spec)  # x: (1, B, F), a sequence of one step
    H, L = spec.hidden_size, spec.num_layers
    h_new, c_new = [], []
    for layer in range(L):
        W, R, B = layer_weights(spec, weights, layer)  # (1, G·H, I), (1, G·H, H), (1, 2·G·H)
        operands = [x, g.const(f"W_ih_l{layer}", W), g.const(f"W_hh_l{layer}", R), g.const(f"b_l{layer}", B),
                    "", hs[layer]]  # no sequence_lens: every stream advances one step
        if spec.cell == "lstm":
            _, h_t, c_t = g.op("LSTM", operands + [cs[layer]], f"lstm_l{layer}", n_out=3, hidden_size=H)
            c_new.append(c_t)  # (1, B, H)
        else:
            _, h_t = g.op("GRU", operands, f"gru_l{layer}", n_out=2, hidden_size=H, linear_before_reset=1)
        h_new.append(h_t)  # (1, B, H)
        x = h_t  # the next layer's one-step sequence
    last = g.op("Squeeze", [x, "axis_0"], "h_last")  # (B, H)
    head_w = g.const("head_weight", np.asarray(weights["head.weight"], np.float32))  # (O, H)
    head_b = g.const("head_bias", np.asarray(weights["head.bias"], np.float32))  # (O,)
    g.op("Gemm", [last, head_w, head_b], "y", transB=1)  # (B, O)
    state_outputs(g, h_new, c_new)
    model = g.build(spec, "step", ir_version=ir_version, opset=opset)
    for node in model.graph.node:  # the unused all-steps output Y: an empty name, as ONNX allows
        if node.op_type in ("LSTM", "GRU"):
            node.output[0] = ""
    return model
