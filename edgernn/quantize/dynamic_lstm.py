"""int8 compute for LSTM on onnxruntime: each ``LSTM`` node becomes ``com.microsoft.DynamicQuantizeLSTM``.

onnxruntime's contrib op takes int8 weights with one scale per output channel (``W`` as
``[D, I, 4H]``, ``R`` as ``[D, H, 4H]``: the transpose of the ONNX ``LSTM`` layout) and quantizes
its activations (the layer input and the hidden state) to 8 bits at run time, one scale per tensor
per step, so its gate products are int8 × int8 → int32 kernels. Gates, cell state and outputs are
float32. The weights are rounded by GPTQ against the calibration activations where their Gram
matrices are known (``edgernn.quantize.weight_only.activation_grams``), else to nearest; the head
and any other ``MatMul``/``Gemm`` weight become weight-only int8 (float compute, folded at load).

onnxruntime has no such op for ``GRU``: a graph with a ``GRU`` node is refused here
(``NoInt8Kernel``), and the bundle records why instead of writing a slow int8 graph.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import onnx
from onnx import helper, numpy_helper

from edgernn.errors import ExportError
from edgernn.quantize.rounding import round_columns
from edgernn.quantize.weight_only import WeightOnlyResult, quantize_weights_int8

CONTRIB = "com.microsoft"
NO_GRU_KERNEL = ("onnxruntime has no int8 GRU kernel (its contrib ops quantize LSTM only: DynamicQuantizeLSTM), "
                 "so an int8-compute GRU graph would run slower than fp32; int8-weights is this model's small ONNX "
                 "file (int8 storage, float speed)")


class NoInt8Kernel(ExportError):
    """The model holds a recurrent op onnxruntime has no int8 kernel for."""


def lstm_to_dynamic_int8(model: onnx.ModelProto, *, grams: Mapping[str, np.ndarray] | None = None) -> WeightOnlyResult:
    """A copy of ``model`` whose ``LSTM`` nodes are ``DynamicQuantizeLSTM`` with int8 weights (see above)."""
    kinds = {n.op_type for n in model.graph.node}
    if kinds & {"GRU", "RNN"}:
        raise NoInt8Kernel(NO_GRU_KERNEL)
    if "LSTM" not in kinds:
        raise ExportError("no LSTM node to quantize")
    grams = dict(grams or {})
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    inits = {i.name: i for i in graph.initializer}
    quantized: dict[str, str] = {}
    for node in graph.node:
        if node.op_type != "LSTM":
            continue
        if any(a.name in ("clip", "activations", "input_forget", "layout") for a in node.attribute):
            raise ExportError(f"LSTM node {node.name or node.output[0]}: DynamicQuantizeLSTM takes no "
                              "clip/activations/input_forget/layout attributes edgernn would carry over")
        new_inputs = list(node.input) + [""] * (8 - len(node.input))  # X W R B seq h0 c0 P
        for position, role in ((1, "W"), (2, "R")):
            name = node.input[position]
            if name not in inits:
                raise ExportError(f"LSTM node {node.name or node.output[0]}: its {role} is not a constant")
            w = numpy_helper.to_array(inits[name]).astype(np.float64)  # (D, 4H, K)
            mats = [w[d].T for d in range(w.shape[0])]  # D × (K, 4H)
            q, scales, quantized[name] = round_columns(mats, grams.get(name))
            graph.initializer.remove(inits.pop(name))
            graph.initializer.extend([
                numpy_helper.from_array(np.stack(q), f"{name}_int8"),  # (D, K, 4H)
                numpy_helper.from_array(np.stack(scales).astype(np.float32), f"{name}_scale"),  # (D, 4H)
                # zero points of the scales' shape (D, 4H): with per-channel scales and one zero point per
                # direction, onnxruntime 1.32 gave wrong, run-to-run different results for a bidirectional LSTM
                numpy_helper.from_array(np.zeros((len(q), q[0].shape[1]), np.int8), f"{name}_zero_point"),
            ])
            new_inputs[position] = f"{name}_int8"
            new_inputs += [f"{name}_scale", f"{name}_zero_point"]
        replacement = helper.make_node("DynamicQuantizeLSTM", new_inputs, list(node.output), name=node.name,
                                       domain=CONTRIB)
        replacement.attribute.extend(node.attribute)  # hidden_size, direction
        node.CopyFrom(replacement)
    if not any(o.domain == CONTRIB for o in out.opset_import):
        out.opset_import.append(helper.make_opsetid(CONTRIB, 1))
    rest = quantize_weights_int8(out, grams=grams)  # the head and other products: weight-only int8
    rest.quantized.update(quantized)
    return rest
