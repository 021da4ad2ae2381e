"""The step graph: one time step with explicit state, from elementary ops only.

``x_t[B, F], h_in[L, B, H] (, c_in[L, B, H]) → y[B, O], h_out[L, B, H] (, c_out[L, B, H])``

Each layer is MatMul, Add, Split, Sigmoid, Tanh and Mul — no LSTM/GRU op — so every quantizer
reaches the recurrent weights as ordinary matrices. ``y`` is the head applied to the top layer's
new hidden state: the prediction the window graph would give for a window ending at this step.
Only unidirectional models stream: a backward direction needs the future.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import onnx

from edgernn.errors import ExportError
from edgernn.export.graph_builder import DEFAULT_IR_VERSION, DEFAULT_OPSET, GraphBuilder
from edgernn.spec import ModelSpec


def step_io(spec: ModelSpec) -> tuple[list[tuple[str, list]], list[tuple[str, list]]]:
    state = [spec.num_layers, "batch", spec.hidden_size]
    inputs = [("x_t", ["batch", spec.input_size]), ("h_in", state)]
    outputs = [("y", ["batch", spec.output_size]), ("h_out", state)]
    if spec.has_cell_state:
        inputs.append(("c_in", state))
        outputs.append(("c_out", state))
    return inputs, outputs


def state_description(spec: ModelSpec) -> dict:
    """The manifest's word on the step graph's state tensors."""
    names = [("h_in", "h_out")] + ([("c_in", "c_out")] if spec.has_cell_state else [])
    return {
        "tensors": [
            {"input": i, "output": o, "shape": [spec.num_layers, "batch", spec.hidden_size], "init": "zeros"}
            for i, o in names
        ],
        "doc": "feed each output back as the next step's input; start (and reset) with zeros",
    }


def _lstm_layer(g: GraphBuilder, l: int, x_in: str, h: str, c: str, p: dict[str, np.ndarray], H: int):
    """One LSTM layer. The gate blocks are reordered (i, f, o, g) so one Sigmoid covers i, f, o."""
    order = [0, 1, 3, 2]  # PyTorch (i, f, g, o) → (i, f, o, g)
    W = np.concatenate([p["W_ih"], p["W_hh"]], axis=1)  # (4H, I + H): [x_t, h] @ W.T in one MatMul
    W = np.concatenate([blk for k in order for blk in [np.split(W, 4)[k]]]).T  # (I + H, 4H)
    b = p["b_ih"] + p["b_hh"]
    b = np.concatenate([np.split(b, 4)[k] for k in order])  # (4H,)
    xh = g.op("Concat", [x_in, h], f"xh_l{l}", axis=-1)  # (1, B, I + H)
    gates = g.op("Add", [g.op("MatMul", [xh, g.const(f"W_l{l}", W)], f"xh_W_l{l}"), g.const(f"b_l{l}", b)],
                 f"gates_l{l}")  # (1, B, 4H)
    ifo_pre, g_pre = g.op("Split", [gates, g.const(f"split_3H_H_l{l}", np.array([3 * H, H], np.int64))],
                          f"gates_parts_l{l}", n_out=2, axis=-1)  # (1, B, 3H), (1, B, H)
    ifo = g.op("Sigmoid", [ifo_pre], f"ifo_l{l}")
    i_t, f_t, o_t = g.op("Split", [ifo, g.const(f"split_H_H_H_l{l}", np.array([H] * 3, np.int64))],
                         f"ifo_parts_l{l}", n_out=3, axis=-1)  # 3 × (1, B, H)
    g_t = g.op("Tanh", [g_pre], f"g_l{l}")
    c_t = g.op("Add", [g.op("Mul", [f_t, c], f"fc_l{l}"), g.op("Mul", [i_t, g_t], f"ig_l{l}")], f"c_t_l{l}")
    h_t = g.op("Mul", [o_t, g.op("Tanh", [c_t], f"tanh_c_l{l}")], f"h_t_l{l}")
    return h_t, c_t


def _gru_layer(g: GraphBuilder, l: int, x_in: str, h: str, p: dict[str, np.ndarray], H: int) -> str:
    """One GRU layer as a single MatMul of [x_t, h] with a block matrix whose columns are
    (r and z: input and hidden summed | n from the input | n from the hidden), so that the reset
    gate can still scale only the hidden part: n = tanh(W_in x + b_in + r * (W_hn h + b_hn))."""
    I = p["W_ih"].shape[1]
    W_ir_z, W_in = p["W_ih"][: 2 * H], p["W_ih"][2 * H :]  # (2H, I), (H, I)
    W_hr_z, W_hn = p["W_hh"][: 2 * H], p["W_hh"][2 * H :]  # (2H, H), (H, H)
    W = np.zeros((4 * H, I + H), np.float32)  # rows: rz (2H) | n_x (H) | n_h (H)
    W[: 2 * H, :I], W[: 2 * H, I:] = W_ir_z, W_hr_z
    W[2 * H : 3 * H, :I] = W_in
    W[3 * H :, I:] = W_hn
    b = np.concatenate([p["b_ih"][: 2 * H] + p["b_hh"][: 2 * H], p["b_ih"][2 * H :], p["b_hh"][2 * H :]])  # (4H,)
    xh = g.op("Concat", [x_in, h], f"xh_l{l}", axis=-1)  # (1, B, I + H)
    pre = g.op("Add", [g.op("MatMul", [xh, g.const(f"W_l{l}", W.T)], f"xh_W_l{l}"), g.const(f"b_l{l}", b)],
               f"pre_l{l}")  # (1, B, 4H)
    rz_pre, n_x, n_h = g.op("Split", [pre, g.const(f"split_2H_H_H_l{l}", np.array([2 * H, H, H], np.int64))],
                            f"pre_parts_l{l}", n_out=3, axis=-1)
    rz = g.op("Sigmoid", [rz_pre], f"rz_l{l}")  # (1, B, 2H)
    r_t, z_t = g.op("Split", [rz, g.const(f"split_H_H_l{l}", np.array([H, H], np.int64))],
                    f"rz_parts_l{l}", n_out=2, axis=-1)  # 2 × (1, B, H)
    n_t = g.op("Tanh", [g.op("Add", [n_x, g.op("Mul", [r_t, n_h], f"r_nh_l{l}")], f"n_pre_l{l}")], f"n_l{l}")
    # h_t = (1 - z) * n + z * h  ==  n + z * (h - n)
    return g.op("Add", [n_t, g.op("Mul", [z_t, g.op("Sub", [h, n_t], f"h_minus_n_l{l}")], f"z_h_n_l{l}")],
                f"h_t_l{l}")


def _layer_params(weights: Mapping[str, np.ndarray], l: int, gh: int) -> dict[str, np.ndarray]:
    f32 = lambda a: np.asarray(a, np.float32)  # noqa: E731
    zeros = np.zeros(gh, np.float32)
    return {
        "W_ih": f32(weights[f"rnn.weight_ih_l{l}"]),  # (G·H, I)
        "W_hh": f32(weights[f"rnn.weight_hh_l{l}"]),  # (G·H, H)
        "b_ih": f32(weights.get(f"rnn.bias_ih_l{l}", zeros)),
        "b_hh": f32(weights.get(f"rnn.bias_hh_l{l}", zeros)),
    }


def split_layers(g: GraphBuilder, name: str, L: int) -> list[str]:
    """State (L, B, H) → L tensors (1, B, H); elementwise ops and MatMul broadcast over the 1."""
    if L == 1:
        return [name]
    return g.op("Split", [name, g.const(f"split_{name}", np.ones(L, np.int64))], f"{name}_layer", n_out=L, axis=0)


def step_scaffold(spec: ModelSpec) -> tuple[GraphBuilder, str, list[str], list[str | None]]:
    """What every step graph starts with: its declared inputs and outputs, the frame as a one-step
    sequence ``x_t_1BF`` (1, B, F) and the state split per layer (``axis_0`` is a constant of the graph)."""
    if spec.bidirectional:
        raise ExportError("a bidirectional model cannot stream: its backward direction needs the whole window")
    g = GraphBuilder(f"edgernn_{spec.cell}_step")
    inputs, outputs = step_io(spec)
    g.declare(inputs, outputs)
    x_in = g.op("Unsqueeze", ["x_t", g.const("axis_0", np.array([0], np.int64))], "x_t_1BF")  # (1, B, F)
    hs = split_layers(g, "h_in", spec.num_layers)
    cs = split_layers(g, "c_in", spec.num_layers) if spec.has_cell_state else [None] * spec.num_layers
    return g, x_in, hs, cs


def state_outputs(g: GraphBuilder, h_new: list[str], c_new: list[str]) -> None:
    """The layers' new states (1, B, H) each, joined into ``h_out`` (and ``c_out``) (L, B, H)."""
    for news, out in ((h_new, "h_out"), (c_new, "c_out")):
        if news:
            g.op("Concat", news, out, axis=0) if len(news) > 1 else g.op("Identity", news, out)


def build_step_graph(
    spec: ModelSpec,
    weights: Mapping[str, np.ndarray],
    *,
    ir_version: int = DEFAULT_IR_VERSION,
    opset: int = DEFAULT_OPSET,
) -> onnx.ModelProto:
    g, x_in, hs, cs = step_scaffold(spec)
    H, L = spec.hidden_size, spec.num_layers
    h_new, c_new = [], []
    for l in range(L):
        p = _layer_params(weights, l, spec.gates * H)
        if spec.cell == "lstm":
            h_t, c_t = _lstm_layer(g, l, x_in, hs[l], cs[l], p, H)
            c_new.append(c_t)
        else:
            h_t = _gru_layer(g, l, x_in, hs[l], p, H)
        h_new.append(h_t)  # (1, B, H)
        x_in = h_t

    head_w = np.asarray(weights["head.weight"], np.float32).T  # (H, O)
    y = g.op("MatMul", [x_in, g.const("head_weight_T", head_w)], "head_matmul")  # (1, B, O)
    y = g.op("Add", [y, g.const("head_bias", np.asarray(weights["head.bias"], np.float32))], "head_out")
    g.op("Squeeze", [y, "axis_0"], "y")  # (B, O)
    state_outputs(g, h_new, c_new)
    return g.build(spec, "step", ir_version=ir_version, opset=opset)
