"""The window graph a quantizer can reach: hoisted input projections and a ``Scan`` per direction.

Same inputs and outputs as the fused window graph (``edgernn.export.onnx_window``), written so that
every weight sits in front of a plain ``MatMul``:

- per layer and direction, the input projection of *all* steps is one ``MatMul``:
  ``xW = seq @ W_ih.T + b`` over ``(T, B, I)`` → ``(T, B, G·H)``; a large GEMM, where int8 pays most;
- the recurrence is an ONNX ``Scan`` over ``xW`` whose body is one step written from elementary ops:
  ``h @ W_hh.T`` (a ``MatMul`` with a constant weight held in the body), Add, Sigmoid, Tanh, Mul;
- the head is ``MatMul`` + ``Add`` on the top layer's last step.

The fp32 file of this graph is never shipped (the fused ``LSTM``/``GRU`` graph is faster in fp32);
it is the input of ``edgernn.quantize``, and ``edgernn.quantize`` checks its parity like any variant.

Gate blocks: LSTM columns are laid out (i, f, o, g) so one ``Sigmoid`` covers i, f and o; GRU
columns are PyTorch's (r, z, n), and ``b_hn`` stays inside the body, under the reset gate.

Every product with a weight goes through a ``MatMulWriter``: ``float_matmul`` (a plain ``MatMul``)
here, the int8 writers of ``edgernn.quantize.int8_matmul`` for the int8 variants. Each product is
named by its weight (its *site*): ``W_ih_T_l0`` (input projection of layer 0), ``W_hh_T_l0``
(recurrent product, inside the Scan body), ``head_weight_T``; ``site_activations`` says which
tensors of the float graph carry each site's activation, for calibration.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import numpy as np
import onnx
from onnx import TensorProto, helper

from edgernn.export.graph_builder import DEFAULT_IR_VERSION, DEFAULT_OPSET, GraphBuilder
from edgernn.export.onnx_step import step_io
from edgernn.export.onnx_window import window_io
from edgernn.spec import ModelSpec

LSTM_BLOCKS = (0, 1, 3, 2)  # PyTorch (i, f, g, o) → (i, f, o, g)


class MatMulWriter(Protocol):
    def __call__(self, g: GraphBuilder, a: str, W: np.ndarray, out: str, site: str) -> str:
        """Write ``out = a @ W`` into ``g`` (``a`` (…, K) float32, ``W`` (K, N)); return ``out``."""


def float_matmul(g: GraphBuilder, a: str, W: np.ndarray, out: str, site: str) -> str:
    return g.op("MatMul", [a, g.const(site, W)], out)


def _blocks(a: np.ndarray, order: tuple[int, ...]) -> np.ndarray:
    parts = np.split(a, 4 if len(order) == 4 else 3, axis=0)
    return np.concatenate([parts[k] for k in order], axis=0)


def direction_params(spec: ModelSpec, weights: Mapping[str, np.ndarray], layer: int, suffix: str) -> dict:
    """``W_ih_T (I, G·H)``, ``W_hh_T (H, G·H)``, ``b_x (G·H)`` added to the input projection, and
    for GRU ``b_hn (H)`` added to the hidden projection of the n gate."""
    gh = spec.gates * spec.hidden_size
    H = spec.hidden_size
    zeros = np.zeros(gh, np.float32)
    w_ih = np.asarray(weights[f"rnn.weight_ih_l{layer}{suffix}"], np.float32)  # (G·H, I)
    w_hh = np.asarray(weights[f"rnn.weight_hh_l{layer}{suffix}"], np.float32)  # (G·H, H)
    b_ih = np.asarray(weights.get(f"rnn.bias_ih_l{layer}{suffix}", zeros), np.float32)
    b_hh = np.asarray(weights.get(f"rnn.bias_hh_l{layer}{suffix}", zeros), np.float32)
    if spec.cell == "lstm":
        return {"W_ih_T": _blocks(w_ih, LSTM_BLOCKS).T, "W_hh_T": _blocks(w_hh, LSTM_BLOCKS).T,
                "b_x": _blocks(b_ih + b_hh, LSTM_BLOCKS)}
    b_x = np.concatenate([b_ih[: 2 * H] + b_hh[: 2 * H], b_ih[2 * H :]])  # r, z summed; n input only
    return {"W_ih_T": w_ih.T, "W_hh_T": w_hh.T, "b_x": b_x, "b_hn": b_hh[2 * H :]}


def lstm_step(g: GraphBuilder, H: int, xW_t: str, h: str, c: str, W_hh_T: np.ndarray, tag: str, s: str = "",
              matmul: MatMulWriter = float_matmul):
    """One LSTM step from ``xW_t (B, 4H)`` (input projection, biases included) and the state; ``s``
    suffixes the tensor names. Returns the names of ``h'`` and ``c'``."""
    hW = matmul(g, h, W_hh_T, f"hW{s}", f"W_hh_T_{tag}")  # (B, 4H)
    gates = g.op("Add", [xW_t, hW], f"gates{s}")  # (B, 4H)
    ifo_pre, g_pre = g.op("Split", [gates, g.const(f"split_3H_H{s}", np.array([3 * H, H], np.int64))],
                          f"gate_parts{s}", n_out=2, axis=-1)  # (B, 3H), (B, H)
    i_t, f_t, o_t = g.op("Split", [g.op("Sigmoid", [ifo_pre], f"ifo{s}"),
                                   g.const(f"split_H3{s}", np.array([H] * 3, np.int64))],
                         f"ifo_parts{s}", n_out=3, axis=-1)  # 3 × (B, H)
    g_t = g.op("Tanh", [g_pre], f"g_t{s}")
    c_t = g.op("Add", [g.op("Mul", [f_t, c], f"fc{s}"), g.op("Mul", [i_t, g_t], f"ig{s}")], f"c_out{s}")
    h_t = g.op("Mul", [o_t, g.op("Tanh", [c_t], f"tanh_c{s}")], f"h_out{s}")
    return h_t, c_t


def gru_step(g: GraphBuilder, H: int, xW_t: str, h: str, W_hh_T: np.ndarray, b_hn: np.ndarray, tag: str, s: str = "",
             matmul: MatMulWriter = float_matmul):
    """One GRU step: n = tanh(xW_n + r * (h W_hn + b_hn)), h' = n + z * (h - n). Returns ``h'``."""
    hW = matmul(g, h, W_hh_T, f"hW{s}", f"W_hh_T_{tag}")  # (B, 3H)
    split = g.const(f"split_2H_H{s}", np.array([2 * H, H], np.int64))
    x_rz, x_n = g.op("Split", [xW_t, split], f"x_parts{s}", n_out=2, axis=-1)  # (B, 2H), (B, H)
    h_rz, h_n = g.op("Split", [hW, split], f"h_parts{s}", n_out=2, axis=-1)
    rz = g.op("Sigmoid", [g.op("Add", [x_rz, h_rz], f"rz_pre{s}")], f"rz{s}")
    r_t, z_t = g.op("Split", [rz, g.const(f"split_H_H{s}", np.array([H, H], np.int64))], f"rz_parts{s}",
                    n_out=2, axis=-1)
    h_n_b = g.op("Add", [h_n, g.const(f"b_hn{s}", b_hn)], f"h_n_b{s}")
    n_t = g.op("Tanh", [g.op("Add", [x_n, g.op("Mul", [r_t, h_n_b], f"r_hn{s}")], f"n_pre{s}")], f"n_t{s}")
    return g.op("Add", [n_t, g.op("Mul", [z_t, g.op("Sub", [h, n_t], f"h_minus_n{s}")], f"z_h_n{s}")], f"h_out{s}")


def _lstm_body(name: str, tag: str, H: int, W_hh_T: np.ndarray, matmul: MatMulWriter) -> onnx.GraphProto:
    """``(h, c, xW_t) → (h', c', y_t)`` with ``y_t = h'``."""
    g = GraphBuilder(name)
    for state in ("h", "c"):
        g.add_input(state, ["batch", H])
    g.add_input("xW_t", ["batch", 4 * H])
    lstm_step(g, H, "xW_t", "h", "c", W_hh_T, tag, matmul=matmul)
    g.op("Identity", ["h_out"], "y_t")
    for out in ("h_out", "c_out", "y_t"):
        g.add_output(out, ["batch", H])
    return helper.make_graph(g.nodes, name, g.inputs, g.outputs, g.initializers)


def _gru_body(name: str, tag: str, H: int, W_hh_T: np.ndarray, b_hn: np.ndarray,
              matmul: MatMulWriter) -> onnx.GraphProto:
    """``(h, xW_t) → (h', y_t)``."""
    g = GraphBuilder(name)
    g.add_input("h", ["batch", H])
    g.add_input("xW_t", ["batch", 3 * H])
    gru_step(g, H, "xW_t", "h", W_hh_T, b_hn, tag, matmul=matmul)
    g.op("Identity", ["h_out"], "y_t")
    for out in ("h_out", "y_t"):
        g.add_output(out, ["batch", H])
    return helper.make_graph(g.nodes, name, g.inputs, g.outputs, g.initializers)


def build_scan_window_graph(
    spec: ModelSpec,
    weights: Mapping[str, np.ndarray],
    *,
    matmul: MatMulWriter = float_matmul,
    ir_version: int = DEFAULT_IR_VERSION,
    opset: int = DEFAULT_OPSET,
) -> onnx.ModelProto:
    g = GraphBuilder(f"edgernn_{spec.cell}_window_scan")
    inputs, outputs = window_io(spec)
    g.declare(inputs, outputs)

    H, D = spec.hidden_size, spec.num_directions
    seq = g.op("Transpose", ["x"], "x_time_major", perm=[1, 0, 2])  # (T, B, F)
    batch = g.op("Gather", [g.op("Shape", ["x"], "x_shape"), g.const("batch_axis", np.array([0], np.int64))],
                 "batch")  # (1,)
    state_shape = g.op("Concat", [batch, g.const("hidden", np.array([H], np.int64))], "state_shape", axis=0)
    zeros = g.op("ConstantOfShape", [state_shape], "zero_state",
                 value=helper.make_tensor("zero", TensorProto.FLOAT, [1], [0.0]))  # (B, H)
    axis_0 = g.const("axis_0", np.array([0], np.int64))
    h_finals, c_finals = [], []
    for layer in range(spec.num_layers):
        ys = []
        for d, suffix in enumerate(("", "_reverse")[:D]):
            tag = f"l{layer}{suffix}"
            p = direction_params(spec, weights, layer, suffix)
            xW = matmul(g, seq, p["W_ih_T"], f"xW_{tag}", f"W_ih_T_{tag}")  # (T, B, G·H)
            xW = g.op("Add", [xW, g.const(f"b_x_{tag}", p["b_x"])], f"xW_b_{tag}")
            if spec.cell == "lstm":
                body = _lstm_body(f"lstm_step_{tag}", tag, H, p["W_hh_T"], matmul)
                h_f, c_f, y = g.op("Scan", [zeros, zeros, xW], f"scan_{tag}", n_out=3, body=body,
                                   num_scan_inputs=1, scan_input_directions=[d], scan_output_directions=[d])
                c_finals.append(g.op("Unsqueeze", [c_f, axis_0], f"c_n_{tag}"))  # (1, B, H)
            else:
                body = _gru_body(f"gru_step_{tag}", tag, H, p["W_hh_T"], p["b_hn"], matmul)
                h_f, y = g.op("Scan", [zeros, xW], f"scan_{tag}", n_out=2, body=body,
                              num_scan_inputs=1, scan_input_directions=[d], scan_output_directions=[d])
            h_finals.append(g.op("Unsqueeze", [h_f, axis_0], f"h_n_{tag}"))  # (1, B, H)
            ys.append(y)  # (T, B, H)
        seq = ys[0] if D == 1 else g.op("Concat", ys, f"y_l{layer}", axis=-1)  # (T, B, D·H)

    last = g.op("Gather", [seq, g.const("last_step", np.array(-1, np.int64))], "h_last", axis=0)  # (B, D·H)
    head_w = np.asarray(weights["head.weight"], np.float32).T  # (D·H, O)
    head = matmul(g, last, head_w, "head_matmul", "head_weight_T")  # (B, O)
    g.op("Add", [head, g.const("head_bias", np.asarray(weights["head.bias"], np.float32))], "y")
    for names, out in ((h_finals, "h_n"), (c_finals, "c_n")):
        if names:
            g.op("Concat", names, out, axis=0) if len(names) > 1 else g.op("Identity", names, out)  # (L·D, B, H)
    return g.build(spec, "window", ir_version=ir_version, opset=opset)


def site_activations(spec: ModelSpec) -> dict[str, tuple[tuple[str, ...], bool]]:
    """Per site (weight name): the tensors of the float Scan window graph whose values the site's
    activation takes, and whether it also takes 0 (a recurrent product starts from the zero state).

    The step graph's sites carry the same quantities one step at a time, so one calibration serves both.
    """
    scan_y = 2 if spec.cell == "lstm" else 1  # index of the per-step output among the Scan's outputs
    sites: dict[str, tuple[tuple[str, ...], bool]] = {}
    for layer in range(spec.num_layers):
        if layer == 0:
            layer_input: tuple[str, ...] = ("x_time_major",)
        elif spec.num_directions == 1:
            layer_input = (f"scan_l{layer - 1}_{scan_y}",)
        else:
            layer_input = (f"y_l{layer - 1}",)
        for suffix in ("", "_reverse")[: spec.num_directions]:
            tag = f"l{layer}{suffix}"
            sites[f"W_ih_T_{tag}"] = (layer_input, False)
            sites[f"W_hh_T_{tag}"] = ((f"scan_{tag}_{scan_y}",), True)
    sites["head_weight_T"] = (("h_last",), False)
    return sites


def build_split_step_graph(
    spec: ModelSpec,
    weights: Mapping[str, np.ndarray],
    *,
    matmul: MatMulWriter = float_matmul,
    ir_version: int = DEFAULT_IR_VERSION,
    opset: int = DEFAULT_OPSET,
) -> onnx.ModelProto:
    """The step graph (same inputs and outputs as ``edgernn.export.onnx_step``) with the input and
    the recurrent projection as two MatMuls per layer, as in the Scan body, instead of one MatMul
    of ``[x_t, h]``: a quantizer then gives ``x_t`` and ``h`` a scale each. Measured: with one
    shared scale, a large input leaves the state (|h| < 1) a few int8 levels, and int8 streaming
    error grew to ~7 (logits, trained 2-layer LSTM, hidden 64)."""
    g = GraphBuilder(f"edgernn_{spec.cell}_step_split")
    inputs, outputs = step_io(spec)
    g.declare(inputs, outputs)
    H, L = spec.hidden_size, spec.num_layers
    split_L = g.const("split_layers", np.ones(L, np.int64))
    axis_0 = g.const("axis_0", np.array([0], np.int64))

    def layers(state: str) -> list[str]:  # (L, B, H) → L × (B, H)
        parts = g.op("Split", [state, split_L], f"{state}_layers", n_out=L, axis=0) if L > 1 else [state]
        return [g.op("Squeeze", [p, axis_0], f"{state}_l{l}") for l, p in enumerate(parts)]

    hs = layers("h_in")
    cs = layers("c_in") if spec.has_cell_state else [None] * L
    x_in, h_new, c_new = "x_t", [], []
    for l in range(L):
        tag = f"l{l}"
        p = direction_params(spec, weights, l, "")
        xW = g.op("Add", [matmul(g, x_in, p["W_ih_T"], f"xW_{tag}", f"W_ih_T_{tag}"),
                          g.const(f"b_x_{tag}", p["b_x"])], f"xW_b_{tag}")  # (B, G·H)
        if spec.cell == "lstm":
            x_in, c_t = lstm_step(g, H, xW, hs[l], cs[l], p["W_hh_T"], tag, f"_{tag}", matmul)
            c_new.append(g.op("Unsqueeze", [c_t, axis_0], f"c_out_{tag}_1BH"))  # (1, B, H)
        else:
            x_in = gru_step(g, H, xW, hs[l], p["W_hh_T"], p["b_hn"], tag, f"_{tag}", matmul)
        h_new.append(g.op("Unsqueeze", [x_in, axis_0], f"h_out_{tag}_1BH"))  # (1, B, H)
    head = matmul(g, x_in, np.asarray(weights["head.weight"], np.float32).T, "head_matmul", "head_weight_T")  # (B, O)
    g.op("Add", [head, g.const("head_bias", np.asarray(weights["head.bias"], np.float32))], "y")
    for news, out in ((h_new, "h_out"), (c_new, "c_out")):
        if news:
            g.op("Concat", news, out, axis=0) if L > 1 else g.op("Identity", news, out)  # (L, B, H)
    return g.build(spec, "step", ir_version=ir_version, opset=opset)
