"""The TFLite step graph, fp32, written from the weights: the same contract as the ONNX step graph.

``x_t[B, F], h_in[L, B, H] (, c_in[L, B, H]) → y[B, O], h_out[L, B, H] (, c_out[L, B, H])``

Builtin ops only — UNPACK, CONCATENATION, FULLY_CONNECTED, SPLIT, LOGISTIC, TANH, MUL, ADD, SUB,
PACK — so every LiteRT quantizer recipe reaches the recurrent weights as ordinary FULLY_CONNECTED
weights, and the file is the weights' own size plus a few kilobytes. FULLY_CONNECTED keeps
PyTorch's (out, in) weight layout, so no matrix is transposed or padded:

- LSTM: one FULLY_CONNECTED on ``[x_t, h]`` with ``[W_ih | W_hh]`` (4H, I + H) and ``b_ih + b_hh``.
- GRU: one FULLY_CONNECTED for the input (3H, I) and one for the hidden state (3H, H), because the
  reset gate scales the hidden part only: ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``.

``row_scaled=True`` writes the layout the int8 variants are quantized from (the same function, and
parity ~1e-7 in fp32):

- every recurrent weight row is divided by its own scale ``s`` (its max |w|, bias included, over the
  largest row's), and a MUL by ``s`` after the matmul puts it back. An int8 weight stored with one scale per tensor
  then has every row's full resolution — what per-channel scales give — while the file keeps one
  scale per tensor, the form every runtime's int8 kernels read (tflite-runtime 2.14's hybrid
  FULLY_CONNECTED reads only the first of per-channel scales). ``s`` is rounded to a multiple of
  1/32767, so the int16 constant a full-integer graph stores it as is exact.
- the LSTM's input and hidden matmuls are apart (no CONCATENATION, the bias on the input one), so a
  dynamic-range kernel quantizes ``h`` with its own range instead of the input's (measured:
  docs/design-quantization-notes.md).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from edgernn.errors import ExportError
from edgernn.export.tflite_builder import SubgraphWriter, add_signature, new_model, to_bytes
from edgernn.spec import ModelSpec

B = "batch"


def _f32(a) -> np.ndarray:
    return np.asarray(a, np.float32)


def _layer_params(weights: Mapping[str, np.ndarray], l: int, gh: int) -> dict[str, np.ndarray]:
    zeros = np.zeros(gh, np.float32)
    return {
        "W_ih": _f32(weights[f"rnn.weight_ih_l{l}"]),  # (G·H, I)
        "W_hh": _f32(weights[f"rnn.weight_hh_l{l}"]),  # (G·H, H)
        "b_ih": _f32(weights.get(f"rnn.bias_ih_l{l}", zeros)),
        "b_hh": _f32(weights.get(f"rnn.bias_hh_l{l}", zeros)),
    }


def _split(g: SubgraphWriter, x: int, parts: int, stem: str, H: int) -> list[int]:
    """SPLIT the last axis of ``x (B, parts·H)`` into ``parts`` tensors ``(B, H)``."""
    outs = [g.tensor(f"{stem}_{k}", [B, H]) for k in range(parts)]
    g.op("SPLIT", [g.const(f"{stem}_axis", np.array(-1, np.int32)), x], outs, numSplits=parts)
    return outs


def _fc(g: SubgraphWriter, x: int, W: np.ndarray, b: np.ndarray | None, name: str) -> int:
    """``x @ W.T + b`` with W in PyTorch's (out, in) layout: (B, in) → (B, out); no bias when ``b`` is None."""
    out = g.tensor(name, [B, W.shape[0]])
    bias = -1 if b is None else g.const(f"{name}_b", b)
    g.op("FULLY_CONNECTED", [x, g.const(f"{name}_W", W), bias], [out], fusedActivationFunction=0, keepNumDims=False)
    return out


def row_scales(W: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """Per-row scale ``s`` (G·H,): each row's max |w| (its bias counted as one more weight, on an input
    of 1) over the largest row's, a multiple of 1/32767 in (0, 1]. Counting the bias keeps ``b / s``
    within the weights' range: a row of tiny weights but a real bias would otherwise swell the
    matmul's output range, and with it the step of a full-integer graph's int16 output."""
    rows = np.abs(W).max(axis=1)
    if b is not None:
        rows = np.maximum(rows, np.abs(b))
    top = rows.max()
    if top == 0:
        return np.ones(len(rows), np.float32)
    return (np.clip(np.round(rows / top * 32767), 1, 32767) / 32767).astype(np.float32)


def _scaled(g: SubgraphWriter, pre: int, s: np.ndarray, name: str) -> int:
    """``pre * s``: puts the row scales back after a matmul on row-normalised weights."""
    out = g.tensor(name, [B, len(s)])
    g.op("MUL", [pre, g.const(f"{name}_row_scale", s)], [out], fusedActivationFunction=0)
    return out


def layout_scales(spec: ModelSpec, weights: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The row scales of the ``row_scaled`` layout, by the name of the tensor they scale back:
    ``gates_l{l}`` (LSTM, from ``[W_ih | W_hh]``), ``x_gates_l{l}`` and ``h_gates_l{l}`` (GRU)."""
    out = {}
    for l in range(spec.num_layers):
        p = _layer_params(weights, l, spec.gates * spec.hidden_size)
        if spec.cell == "lstm":
            out[f"gates_l{l}"] = row_scales(np.concatenate([p["W_ih"], p["W_hh"]], axis=1), p["b_ih"] + p["b_hh"])
        else:
            out[f"x_gates_l{l}"] = row_scales(p["W_ih"], p["b_ih"])
            out[f"h_gates_l{l}"] = row_scales(p["W_hh"], p["b_hh"])
    return out


def _fc_row_scaled(g: SubgraphWriter, x: int, W: np.ndarray, b: np.ndarray, name: str, s: np.ndarray) -> int:
    pre = _fc(g, x, W / s[:, None], b / s, f"{name}_unscaled")
    return _scaled(g, pre, s, name)


def _lstm_gates(g: SubgraphWriter, l: int, x: int, h: int, p: dict, I: int, H: int, scales: dict | None) -> int:
    """The LSTM's gate pre-activations (B, 4H)."""
    W = np.concatenate([p["W_ih"], p["W_hh"]], axis=1)  # (4H, I + H)
    b = p["b_ih"] + p["b_hh"]
    if scales is None:
        xh = g.tensor(f"xh_l{l}", [B, I + H])
        g.op("CONCATENATION", [x, h], [xh], axis=-1, fusedActivationFunction=0)  # (B, I + H)
        return _fc(g, xh, W, b, f"gates_l{l}")
    s = scales[f"gates_l{l}"]
    x_part = _fc(g, x, p["W_ih"] / s[:, None], b / s, f"x_gates_l{l}")  # (B, 4H)
    h_part = _fc(g, h, p["W_hh"] / s[:, None], None, f"h_gates_l{l}")  # (B, 4H)
    return _scaled(g, g.binary("ADD", x_part, h_part, f"gates_l{l}_unscaled", [B, 4 * H]), s, f"gates_l{l}")


def _lstm_layer(g: SubgraphWriter, l: int, x: int, h: int, c: int, p: dict, I: int, H: int,
                scales: dict | None) -> tuple[int, int]:
    gates = _lstm_gates(g, l, x, h, p, I, H, scales)  # (B, 4H)
    i_pre, f_pre, g_pre, o_pre = _split(g, gates, 4, f"gates_l{l}_ifgo", H)  # PyTorch order i, f, g, o
    i_t = g.unary("LOGISTIC", i_pre, f"i_l{l}", [B, H])
    f_t = g.unary("LOGISTIC", f_pre, f"f_l{l}", [B, H])
    g_t = g.unary("TANH", g_pre, f"g_l{l}", [B, H])
    o_t = g.unary("LOGISTIC", o_pre, f"o_l{l}", [B, H])
    c_t = g.binary("ADD", g.binary("MUL", f_t, c, f"fc_l{l}", [B, H]),
                   g.binary("MUL", i_t, g_t, f"ig_l{l}", [B, H]), f"c_t_l{l}", [B, H])
    h_t = g.binary("MUL", o_t, g.unary("TANH", c_t, f"tanh_c_l{l}", [B, H]), f"h_t_l{l}", [B, H])
    return h_t, c_t


def _gru_layer(g: SubgraphWriter, l: int, x: int, h: int, p: dict, H: int, scales: dict | None) -> int:
    def fc(inp: int, W: np.ndarray, b: np.ndarray, name: str) -> int:
        return _fc(g, inp, W, b, name) if scales is None else _fc_row_scaled(g, inp, W, b, name, scales[name])

    x_r, x_z, x_n = _split(g, fc(x, p["W_ih"], p["b_ih"], f"x_gates_l{l}"), 3, f"x_gates_l{l}_rzn", H)
    h_r, h_z, h_n = _split(g, fc(h, p["W_hh"], p["b_hh"], f"h_gates_l{l}"), 3, f"h_gates_l{l}_rzn", H)
    r_t = g.unary("LOGISTIC", g.binary("ADD", x_r, h_r, f"r_pre_l{l}", [B, H]), f"r_l{l}", [B, H])
    z_t = g.unary("LOGISTIC", g.binary("ADD", x_z, h_z, f"z_pre_l{l}", [B, H]), f"z_l{l}", [B, H])
    n_pre = g.binary("ADD", x_n, g.binary("MUL", r_t, h_n, f"r_hn_l{l}", [B, H]), f"n_pre_l{l}", [B, H])
    n_t = g.unary("TANH", n_pre, f"n_l{l}", [B, H])
    # h_t = (1 - z) * n + z * h  ==  n + z * (h - n)
    z_h_n = g.binary("MUL", z_t, g.binary("SUB", h, n_t, f"h_minus_n_l{l}", [B, H]), f"z_h_n_l{l}", [B, H])
    return g.binary("ADD", n_t, z_h_n, f"h_t_l{l}", [B, H])


def _unpack(g: SubgraphWriter, state: int, stem: str, L: int, H: int) -> list[int]:
    """State (L, B, H) → L tensors (B, H)."""
    outs = [g.tensor(f"{stem}_l{l}", [B, H]) for l in range(L)]
    g.op("UNPACK", [state], outs, num=L, axis=0)
    return outs


def build_step_model(spec: ModelSpec, weights: Mapping[str, np.ndarray], *, row_scaled: bool = False,
                     scales: Mapping[str, np.ndarray] | None = None):
    """The fp32 step graph as a mutable ``ModelT`` (subgraph 0, signature ``serving_default``);
    ``row_scaled``: the layout the int8 variants are quantized from (see the module's notes), with
    ``scales`` (as ``layout_scales`` gives) or the weights' own row scales."""
    if spec.bidirectional:
        raise ExportError("a bidirectional model cannot stream: its backward direction needs the whole window")
    H, L, F = spec.hidden_size, spec.num_layers, spec.input_size
    model = new_model(f"edgernn {spec.cell} step graph")
    g = SubgraphWriter(model, f"edgernn_{spec.cell}_step")
    state_shape = [L, B, H]
    inputs = [g.tensor("x_t", [B, F]), g.tensor("h_in", state_shape)]
    if spec.has_cell_state:
        inputs.append(g.tensor("c_in", state_shape))

    hs = _unpack(g, inputs[1], "h_in", L, H)
    cs = _unpack(g, inputs[2], "c_in", L, H) if spec.has_cell_state else [None] * L
    if row_scaled and scales is None:
        scales = layout_scales(spec, weights)
    scales = dict(scales) if row_scaled else None
    x, in_size, h_new, c_new = inputs[0], F, [], []
    for l in range(L):
        p = _layer_params(weights, l, spec.gates * H)
        if spec.cell == "lstm":
            h_t, c_t = _lstm_layer(g, l, x, hs[l], cs[l], p, in_size, H, scales)
            c_new.append(c_t)
        else:
            h_t = _gru_layer(g, l, x, hs[l], p, H, scales)
        h_new.append(h_t)  # (B, H)
        x, in_size = h_t, H

    y = _fc(g, x, _f32(weights["head.weight"]), _f32(weights["head.bias"]), "head")  # (B, O)
    g.graph.tensors[y].name = "y"
    outputs = [y]
    for news, name in ((h_new, "h_out"), (c_new, "c_out")):
        if news:
            out = g.tensor(name, state_shape)
            g.op("PACK", news, [out], valuesCount=L, axis=0)  # (L, B, H)
            outputs.append(out)
    g.set_io(inputs, outputs)
    add_signature(model)
    return model


def step_model_bytes(spec: ModelSpec, weights: Mapping[str, np.ndarray], *, row_scaled: bool = False,
                     scales: Mapping[str, np.ndarray] | None = None) -> bytes:
    return to_bytes(build_step_model(spec, weights, row_scaled=row_scaled, scales=scales))
