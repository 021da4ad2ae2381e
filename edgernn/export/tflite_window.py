"""The TFLite window graph: a WHILE loop over the step graph, so the file does not grow with T.

``x[B, T, F] → y[B, O], h_n[L, B, H] (, c_n[L, B, H])``, dynamic batch and time.

Subgraph 0 (main) moves x to time-major, reads B and T off its shape, fills zero states and runs
``WHILE t < T``; subgraph 1 is the condition; subgraph 2 (the body) is the step graph of the same
precision, unchanged but for a GATHER that picks ``x_t = x[t]`` and an ADD that counts ``t``. The
loop carries ``(t, T, x, h[, c], y)``; ``y`` after the last step is the head on the top layer's
final hidden state, as the ONNX window graph gives. Because the body *is* the step graph, the
window and the step variants of one precision compute the same numbers, and every precision the
quantizer gives the step graph (fp16, dynamic and full int8) has its window graph for free.
"""

from __future__ import annotations

import numpy as np

from edgernn.export.tflite_builder import SubgraphWriter, add_signature, from_bytes, make_operator, schema, to_bytes
from edgernn.spec import ModelSpec

MAIN, COND, BODY = 0, 1, 2


def _by_name(graph, indices) -> dict[str, int]:
    names = {}
    for i in indices:
        name = graph.tensors[i].name
        names[name.decode() if isinstance(name, bytes) else name] = i
    return names


def _loop_tensors(g: SubgraphWriter, spec: ModelSpec, stem: str) -> list[int]:
    """One tensor per loop variable: t, T, x (time-major), h[, c], y."""
    state = [spec.num_layers, "batch", spec.hidden_size]
    tensors = [g.tensor(f"t_{stem}", [], "int32"), g.tensor(f"T_{stem}", [], "int32"),
               g.tensor(f"x_tbf_{stem}", ["time", "batch", spec.input_size]), g.tensor(f"h_{stem}", state)]
    if spec.has_cell_state:
        tensors.append(g.tensor(f"c_{stem}", state))
    tensors.append(g.tensor(f"y_{stem}", ["batch", spec.output_size]))
    return tensors


def _make_body(model, spec: ModelSpec) -> None:
    """Turn subgraph 0 (the step graph) into the loop body, in place."""
    body = model.subgraphs[0]
    body.name = "while_body_step"
    ins, outs = _by_name(body, body.inputs), _by_name(body, body.outputs)
    g = SubgraphWriter.existing(model, body)
    t, T, x_tbf = (g.tensor("t", [], "int32"), g.tensor("T", [], "int32"),
                   g.tensor("x_tbf", ["time", "batch", spec.input_size]))
    y_prev = g.tensor("y_prev", ["batch", spec.output_size])
    t_next = g.tensor("t_next", [], "int32")
    gather = make_operator(model, "GATHER", [x_tbf, t], [ins["x_t"]], axis=0, batchDims=0)  # x_t = x[t]: (B, F)
    count = make_operator(model, "ADD", [t, g.const("one", np.array(1, np.int32))], [t_next], fusedActivationFunction=0)
    body.operators = [gather, count] + body.operators
    cell = ["c_in"] if spec.has_cell_state else []
    body.inputs = [t, T, x_tbf, ins["h_in"], *[ins[c] for c in cell], y_prev]
    body.outputs = [t_next, T, x_tbf, outs["h_out"], *[outs["c_out"] for _ in cell], outs["y"]]


def _make_cond(model, spec: ModelSpec) -> None:
    g = SubgraphWriter(model, "while_cond_t_less_T")
    loop = _loop_tensors(g, spec, "cond")
    go_on = g.tensor("t_less_T", [], "bool")
    g.op("LESS", [loop[0], loop[1]], [go_on])
    g.set_io(loop, [go_on])


def _make_main(model, spec: ModelSpec) -> None:
    L, H, F, O = spec.num_layers, spec.hidden_size, spec.input_size, spec.output_size
    g = SubgraphWriter(model, f"edgernn_{spec.cell}_window")
    x = g.tensor("x", ["batch", "time", F])
    x_tbf = g.tensor("x_tbf", ["time", "batch", F])
    g.op("TRANSPOSE", [x, g.const("perm_1_0_2", np.array([1, 0, 2], np.int32))], [x_tbf])  # (T, B, F)
    shape = g.unary("SHAPE", x, "x_shape", [3], "int32", outType=schema().TensorType.INT32)
    T = g.tensor("T", [], "int32")
    g.op("GATHER", [shape, g.const("axis_time", np.array(1, np.int32))], [T], axis=0, batchDims=0)
    batch = g.tensor("B", [1], "int32")
    g.op("GATHER", [shape, g.const("axis_batch", np.array([0], np.int32))], [batch], axis=0, batchDims=0)
    zero = g.const("zero", np.array(0.0, np.float32))

    def zeros(name: str, before: list[int], after: list[int], shape: list) -> int:
        dims = g.tensor(f"{name}_dims", [len(shape)], "int32")
        parts = ([g.const(f"{name}_lead", np.array(before, np.int32))] if before else []) + [batch] + \
                [g.const(f"{name}_tail", np.array(after, np.int32))]
        g.op("CONCATENATION", parts, [dims], axis=0, fusedActivationFunction=0)
        out = g.tensor(name, shape)
        g.op("FILL", [dims, zero], [out])
        return out

    state = [L, "batch", H]
    init = [g.const("t0", np.array(0, np.int32)), T, x_tbf, zeros("h0", [L], [H], state)]
    if spec.has_cell_state:
        init.append(zeros("c0", [L], [H], state))
    init.append(zeros("y0", [], [O], ["batch", O]))
    final = _loop_tensors(g, spec, "final")
    names = ["h_n"] + (["c_n"] if spec.has_cell_state else []) + ["y"]
    for index, name in zip(final[3:], names):
        g.graph.tensors[index].name = name
    g.op("WHILE", init, final, condSubgraphIndex=COND, bodySubgraphIndex=BODY)
    g.set_io([x], [final[-1], *final[3:-1]])  # y, h_n[, c_n]


def wrap_step(step_bytes: bytes, spec: ModelSpec) -> bytes:
    """The window graph around a step graph of any precision (float inputs and outputs)."""
    model = from_bytes(step_bytes)
    _make_body(model, spec)
    body = model.subgraphs[0]
    model.subgraphs = []
    _make_main(model, spec)
    _make_cond(model, spec)
    model.subgraphs.append(body)  # order: main, cond, body
    model.description = f"edgernn {spec.cell} window graph (WHILE over the step graph)"
    add_signature(model, MAIN)
    return to_bytes(model)
