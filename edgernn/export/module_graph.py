"""Window and step graphs for a recognised module that goes beyond edgernn's own model.

``edgernn.export.from_module`` maps a user's module onto a ``ModelSpec`` and PyTorch-layout weights
(``emb.weight``, ``rnn.*``, ``head.*``). A plain spec is written by edgernn's own writers
(``onnx_window``, ``onnx_step``); this module writes the rest, with the same inputs, outputs and ops:

- **Embedding in front** (``vocab_size``): ``x`` is int64 token ids ``(B, T)``, looked up by one Gather.
- **lengths** (padded batches, what ``pack_padded_sequence`` users have): an int64 ``lengths[B]``
  input becomes each LSTM/GRU node's ``sequence_lens``: a sequence's steps past its length are not
  run, its final state is the one at its last real step, and its outputs there are zeros (as
  ``pad_packed_sequence`` gives).
- **proj_size** (LSTM with projection): the ONNX LSTM op has no projection, so each direction is a
  ``Scan`` whose body is one LSTM step from elementary ops, ending in ``h = (o * tanh(c)) @ W_hr.T``;
  with lengths, a mask keeps the state and zeroes the output past each sequence's end.
- **head_input**: ``last_step`` (each sequence's last real step), ``final_state`` (the top layer's
  final h of both directions, forward first: ``cat(h_n[-2], h_n[-1])``), ``every_step`` (``y[B, T, O]``).

The step graph is ``onnx_step``'s, with the Embedding in front and the projection after each layer.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import onnx
from onnx import TensorProto, helper

from edgernn.errors import ExportError
from edgernn.export.graph_builder import DEFAULT_IR_VERSION, DEFAULT_OPSET, GraphBuilder
from edgernn.export.onnx_step import _gru_layer, _layer_params, _lstm_layer, split_layers, state_outputs
from edgernn.export.onnx_window import layer_weights
from edgernn.spec import ModelSpec

LSTM_IFOG = (0, 1, 3, 2)  # PyTorch (i, f, g, o) → (i, f, o, g): one Sigmoid covers i, f, o


def _f32(a) -> np.ndarray:
    return np.asarray(a, np.float32)


def _head_params(spec: ModelSpec, weights: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    W = _f32(weights["head.weight"])  # (O, D·S)
    b = _f32(weights.get("head.bias", np.zeros(W.shape[0], np.float32)))  # (O,)
    return W.T, b


def window_io(spec: ModelSpec, *, lengths: bool) -> tuple[list, list]:
    """Names, shapes and element types of the window graph's inputs and outputs."""
    D, S, H = spec.num_directions, spec.state_size, spec.hidden_size
    x = ("x", ["batch", "time"], TensorProto.INT64) if spec.vocab_size else \
        ("x", ["batch", "time", spec.input_size], TensorProto.FLOAT)
    inputs = [x] + ([("lengths", ["batch"], TensorProto.INT64)] if lengths else [])
    y_shape = ["batch", "time", spec.output_size] if spec.head_input == "every_step" else ["batch", spec.output_size]
    outputs = [("y", y_shape, TensorProto.FLOAT), ("h_n", [spec.num_layers * D, "batch", S], TensorProto.FLOAT)]
    if spec.has_cell_state:
        outputs.append(("c_n", [spec.num_layers * D, "batch", H], TensorProto.FLOAT))
    return inputs, outputs


def step_io(spec: ModelSpec, *, head: bool = True) -> tuple[list, list]:
    L, S, H = spec.num_layers, spec.state_size, spec.hidden_size
    x_t = ("x_t", ["batch"], TensorProto.INT64) if spec.vocab_size else \
        ("x_t", ["batch", spec.input_size], TensorProto.FLOAT)
    inputs = [x_t, ("h_in", [L, "batch", S], TensorProto.FLOAT)]
    y = ("y", ["batch", spec.output_size], TensorProto.FLOAT) if head else ("features", ["batch", S], TensorProto.FLOAT)
    outputs = [y, ("h_out", [L, "batch", S], TensorProto.FLOAT)]
    if spec.has_cell_state:
        inputs.append(("c_in", [L, "batch", H], TensorProto.FLOAT))
        outputs.append(("c_out", [L, "batch", H], TensorProto.FLOAT))
    return inputs, outputs


def state_description(spec: ModelSpec) -> dict:
    """The manifest's word on the step graph's state tensors."""
    L = spec.num_layers
    tensors = [{"input": "h_in", "output": "h_out", "shape": [L, "batch", spec.state_size], "init": "zeros"}]
    if spec.has_cell_state:
        tensors.append({"input": "c_in", "output": "c_out", "shape": [L, "batch", spec.hidden_size], "init": "zeros"})
    return {"tensors": tensors, "doc": "feed each output back as the next step's input; start (and reset) with zeros"}


# --------------------------------------------------------------------------------------------
# Window graph
# --------------------------------------------------------------------------------------------


def _proj_lstm_body(name: str, H: int, P: int, W_hh_T: np.ndarray, W_hr_T: np.ndarray, masked: bool):
    """``(h[B, P], c[B, H], xW_t[B, 4H] (, m_t[B, 1])) → (h', c', y_t)``; gate columns (i, f, o, g)."""
    g = GraphBuilder(name)
    g.add_input("h", ["batch", P])
    g.add_input("c", ["batch", H])
    g.add_input("xW_t", ["batch", 4 * H])
    if masked:
        g.add_input("m_t", ["batch", 1])
    gates = g.op("Add", ["xW_t", g.op("MatMul", ["h", g.const(f"{name}_W_hh_T", W_hh_T)], "hW")], "gates")  # (B, 4H)
    ifo_pre, g_pre = g.op("Split", [gates, g.const("split_3H_H", np.array([3 * H, H], np.int64))],
                          "gate_parts", n_out=2, axis=-1)  # (B, 3H), (B, H)
    i_t, f_t, o_t = g.op("Split", [g.op("Sigmoid", [ifo_pre], "ifo"), g.const("split_H3", np.array([H] * 3, np.int64))],
                         "ifo_parts", n_out=3, axis=-1)  # 3 × (B, H)
    c_new = g.op("Add", [g.op("Mul", [f_t, "c"], "fc"), g.op("Mul", [i_t, g.op("Tanh", [g_pre], "g_t")], "ig")], "c_new")
    h_full = g.op("Mul", [o_t, g.op("Tanh", [c_new], "tanh_c")], "h_full")  # (B, H)
    h_new = g.op("MatMul", [h_full, g.const(f"{name}_W_hr_T", W_hr_T)], "h_new")  # (B, P)
    if masked:  # past a sequence's end: keep the state, output zeros
        g.op("Add", ["c", g.op("Mul", ["m_t", g.op("Sub", [c_new, "c"], "dc")], "m_dc")], "c_out")
        g.op("Add", ["h", g.op("Mul", ["m_t", g.op("Sub", [h_new, "h"], "dh")], "m_dh")], "h_out")
        g.op("Mul", ["m_t", h_new], "y_t")
    else:
        g.op("Identity", [c_new], "c_out")
        g.op("Identity", [h_new], "h_out")
        g.op("Identity", [h_new], "y_t")
    g.add_output("h_out", ["batch", P])
    g.add_output("c_out", ["batch", H])
    g.add_output("y_t", ["batch", P])
    return helper.make_graph(g.nodes, name, g.inputs, g.outputs, g.initializers)


def _zeros(g: GraphBuilder, batch: str, size: int, name: str) -> str:
    shape = g.op("Concat", [batch, g.const(f"{name}_size", np.array([size], np.int64))], f"{name}_shape", axis=0)
    return g.op("ConstantOfShape", [shape], name, value=helper.make_tensor("zero", TensorProto.FLOAT, [1], [0.0]))


def _proj_layer(g: GraphBuilder, spec: ModelSpec, weights, layer: int, seq: str, mask: str | None, batch: str):
    """One projected LSTM layer as a Scan per direction: (T, B, D·P), [h_final (1, B, P)], [c_final]."""
    H, P = spec.hidden_size, spec.proj_size
    ys, hs, cs = [], [], []
    axis_0 = g.const(f"axis_0_l{layer}", np.array([0], np.int64))
    h0, c0 = _zeros(g, batch, P, f"h0_l{layer}"), _zeros(g, batch, H, f"c0_l{layer}")
    for d, suffix in enumerate(("", "_reverse")[: spec.num_directions]):
        tag = f"l{layer}{suffix}"
        blocks = lambda a: np.concatenate([np.split(_f32(a), 4)[k] for k in LSTM_IFOG])  # noqa: E731
        zeros = np.zeros(4 * H, np.float32)
        b = blocks(weights.get(f"rnn.bias_ih_{tag}", zeros)) + blocks(weights.get(f"rnn.bias_hh_{tag}", zeros))
        xW = g.op("MatMul", [seq, g.const(f"W_ih_T_{tag}", blocks(weights[f"rnn.weight_ih_{tag}"]).T)], f"xW_{tag}")
        xW = g.op("Add", [xW, g.const(f"b_{tag}", b)], f"xW_b_{tag}")  # (T, B, 4H)
        body = _proj_lstm_body(f"proj_lstm_step_{tag}", H, P, blocks(weights[f"rnn.weight_hh_{tag}"]).T,
                               _f32(weights[f"rnn.weight_hr_{tag}"]).T, mask is not None)
        scans = [xW] + ([mask] if mask else [])
        h_f, c_f, y = g.op("Scan", [h0, c0, *scans], f"scan_{tag}", n_out=3, body=body, num_scan_inputs=len(scans),
                           scan_input_directions=[d] * len(scans), scan_output_directions=[d])
        ys.append(y)  # (T, B, P)
        hs.append(g.op("Unsqueeze", [h_f, axis_0], f"h_n_{tag}"))  # (1, B, P)
        cs.append(g.op("Unsqueeze", [c_f, axis_0], f"c_n_{tag}"))  # (1, B, H)
    seq = ys[0] if len(ys) == 1 else g.op("Concat", ys, f"y_l{layer}", axis=-1)  # (T, B, D·P)
    return seq, hs, cs


def _fused_layer(g: GraphBuilder, spec: ModelSpec, weights, layer: int, seq: str, seq_lens: str | None):
    """One standard ONNX LSTM/GRU node: (T, B, D·H), [h_final (D, B, H)], [c_final (D, B, H)]."""
    H, D = spec.hidden_size, spec.num_directions
    W, R, B = layer_weights(spec, weights, layer)
    ins = [seq, g.const(f"W_ih_l{layer}", W), g.const(f"W_hh_l{layer}", R), g.const(f"b_l{layer}", B)]
    ins += [seq_lens] if seq_lens else []
    direction = "bidirectional" if spec.bidirectional else "forward"
    if spec.cell == "lstm":
        y, y_h, y_c = g.op("LSTM", ins, f"lstm_l{layer}", n_out=3, hidden_size=H, direction=direction)
        cs = [y_c]
    else:
        y, y_h = g.op("GRU", ins, f"gru_l{layer}", n_out=2, hidden_size=H, direction=direction, linear_before_reset=1)
        cs = []
    y = g.op("Transpose", [y], f"y_l{layer}_tbdh", perm=[0, 2, 1, 3])  # (T, B, D, H)
    seq = g.op("Reshape", [y, g.const(f"shape_T_B_DH_l{layer}", np.array([0, 0, D * H], np.int64))], f"y_l{layer}")
    return seq, [y_h], cs


def _head_features(g: GraphBuilder, spec: ModelSpec, seq: str, top_h: list[str], lengths: bool) -> str:
    """What the head reads: (B, D·S), or (B, T, D·S) for every_step."""
    D, S = spec.num_directions, spec.state_size
    if spec.head_input == "every_step":
        return g.op("Transpose", [seq], "y_seq_btf", perm=[1, 0, 2])  # (B, T, D·S)
    if spec.head_input == "final_state" and spec.bidirectional:
        h = top_h[0] if len(top_h) == 1 else g.op("Concat", top_h, "h_top", axis=0)  # (D, B, S)
        h = g.op("Transpose", [h], "h_top_bds", perm=[1, 0, 2])  # (B, D, S)
        return g.op("Reshape", [h, g.const("shape_B_DS", np.array([0, D * S], np.int64))], "h_last")  # (B, D·S)
    if not lengths:
        return g.op("Gather", [seq, g.const("last_step", np.array(-1, np.int64))], "h_last", axis=0)  # (B, D·S)
    last = g.op("Sub", ["lengths", g.const("one", np.array(1, np.int64))], "last_index")  # (B,)
    last = g.op("Unsqueeze", [last, g.const("axis_1", np.array([1], np.int64))], "last_index_B1")  # (B, 1)
    seq_bt = g.op("Transpose", [seq], "y_seq_btf", perm=[1, 0, 2])  # (B, T, D·S)
    return g.op("GatherND", [seq_bt, last], "h_last", batch_dims=1)  # (B, D·S)


def build_window_graph(
    spec: ModelSpec,
    weights: Mapping[str, np.ndarray],
    *,
    lengths: bool = False,
    ir_version: int = DEFAULT_IR_VERSION,
    opset: int = DEFAULT_OPSET,
) -> onnx.ModelProto:
    g = GraphBuilder(f"edgernn_{spec.cell}_module_window")
    inputs, outputs = window_io(spec, lengths=lengths)
    g.declare(inputs, outputs)

    x = "x"
    if spec.vocab_size:
        x = g.op("Gather", [g.const("emb_weight", _f32(weights["emb.weight"])), "x"], "x_embedded", axis=0)  # (B, T, E)
    seq = g.op("Transpose", [x], "x_time_major", perm=[1, 0, 2])  # (T, B, F)
    batch = g.op("Gather", [g.op("Shape", [seq], "seq_shape"), g.const("batch_axis", np.array([1], np.int64))], "batch")
    seq_lens = g.op("Cast", ["lengths"], "seq_lens", to=TensorProto.INT32) if lengths else None  # (B,)
    mask = None
    if lengths and spec.proj_size:
        T = g.op("Gather", [g.op("Shape", [seq], "seq_shape_t"), g.const("time_axis", np.array(0, np.int64))], "T")
        steps = g.op("Range", [g.const("zero_i64", np.array(0, np.int64)), T, g.const("one_i64", np.array(1, np.int64))],
                     "steps")  # (T,)
        steps = g.op("Unsqueeze", [steps, g.const("axis_1_m", np.array([1], np.int64))], "steps_T1")  # (T, 1)
        valid = g.op("Cast", [g.op("Less", [steps, "lengths"], "valid_TB")], "valid_f", to=TensorProto.FLOAT)  # (T, B)
        mask = g.op("Unsqueeze", [valid, g.const("axis_2_m", np.array([2], np.int64))], "mask")  # (T, B, 1)

    h_finals, c_finals = [], []
    for layer in range(spec.num_layers):
        if spec.proj_size:
            seq, hs, cs = _proj_layer(g, spec, weights, layer, seq, mask, batch)
        else:
            seq, hs, cs = _fused_layer(g, spec, weights, layer, seq, seq_lens)
        h_finals += hs
        c_finals += cs

    top_h = h_finals[-spec.num_directions:] if spec.proj_size else h_finals[-1:]
    features = _head_features(g, spec, seq, top_h, lengths)
    W_T, b = _head_params(spec, weights)
    y = g.op("MatMul", [features, g.const("head_weight_T", W_T)], "head_matmul")  # (B, O) or (B, T, O)
    g.op("Add", [y, g.const("head_bias", b)], "y")
    for names, out in ((h_finals, "h_n"), (c_finals, "c_n")):
        if names:
            g.op("Concat", names, out, axis=0) if len(names) > 1 else g.op("Identity", names, out)  # (L·D, B, ·)
    return g.build(spec, "window", ir_version=ir_version, opset=opset)


# --------------------------------------------------------------------------------------------
# Step graph
# --------------------------------------------------------------------------------------------


def build_step_graph(
    spec: ModelSpec,
    weights: Mapping[str, np.ndarray],
    *,
    head: bool = True,
    ir_version: int = DEFAULT_IR_VERSION,
    opset: int = DEFAULT_OPSET,
) -> onnx.ModelProto:
    """``x_t, h_in (, c_in) → y, h_out (, c_out)``: the head on each step's top-layer h. Without
    ``head``, the top-layer h comes out as ``features[B, S]`` for a head written elsewhere."""
    if spec.bidirectional:
        raise ExportError("a bidirectional model cannot stream: its backward direction needs the whole window")
    g = GraphBuilder(f"edgernn_{spec.cell}_module_step")
    inputs, outputs = step_io(spec, head=head)
    for name, shape, elem in inputs:
        g.add_input(name, shape, elem)
    for name, shape, elem in outputs:
        g.add_output(name, shape, elem)

    H, L = spec.hidden_size, spec.num_layers
    axis_0 = g.const("axis_0", np.array([0], np.int64))
    x_t = "x_t"
    if spec.vocab_size:
        x_t = g.op("Gather", [g.const("emb_weight", _f32(weights["emb.weight"])), "x_t"], "x_t_embedded", axis=0)  # (B, E)
    x_in = g.op("Unsqueeze", [x_t, axis_0], "x_t_1BF")  # (1, B, F)
    hs = split_layers(g, "h_in", L)
    cs = split_layers(g, "c_in", L) if spec.has_cell_state else [None] * L
    h_new, c_new = [], []
    for l in range(L):
        p = _layer_params(weights, l, spec.gates * H)
        if spec.cell == "lstm":
            h_t, c_t = _lstm_layer(g, l, x_in, hs[l], cs[l], p, H)  # W_hh (4H, S): h_in may be projected
            if spec.proj_size:
                h_t = g.op("MatMul", [h_t, g.const(f"W_hr_T_l{l}", _f32(weights[f"rnn.weight_hr_l{l}"]).T)],
                           f"h_proj_l{l}")  # (1, B, P)
            c_new.append(c_t)
        else:
            h_t = _gru_layer(g, l, x_in, hs[l], p, H)
        h_new.append(h_t)  # (1, B, S)
        x_in = h_t

    if head:
        W_T, b = _head_params(spec, weights)
        y = g.op("Add", [g.op("MatMul", [x_in, g.const("head_weight_T", W_T)], "head_matmul"), g.const("head_bias", b)],
                 "head_out")  # (1, B, O)
        g.op("Squeeze", [y, axis_0], "y")  # (B, O)
    else:
        g.op("Squeeze", [x_in, axis_0], "features")  # (B, S)
    state_outputs(g, h_new, c_new)  # (L, B, ·)
    return g.build(spec, "step", ir_version=ir_version, opset=opset)
