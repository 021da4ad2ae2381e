"""fp16: weights stored in half precision, compute kept in float32.

Every float32 initializer that feeds a weight-bearing node (``LSTM``/``GRU`` W, R, B; ``MatMul``
and ``Gemm`` weights and biases) is stored as float16 and followed by a ``Cast`` back to float32
under the original name. The graph's inputs, outputs and every op stay float32, so:

- the file is about half the size;
- onnxruntime's CPU provider folds each ``Cast`` once at session start and keeps its fused float32
  ``LSTM``/``GRU`` kernels. (Measured with onnxruntime 1.32: a graph whose LSTM/GRU/MatMul run in
  float16 also loads on the CPU, but only because onnxruntime inserts Casts to float32 around every
  node without a float16 CPU kernel — the compute is float32 either way, with extra Casts per
  call. Converting the whole graph to float16 would therefore buy nothing on CPU.)

The error is the rounding of each weight to 11 significant bits (relative 2^-11 ≈ 4.9e-4).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgernn.quantize.report import WEIGHT_INPUTS

COMPUTE_NOTE = "float32 (weights stored float16, cast to float32 once at session start)"


def weights_to_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` whose weight initializers are float16 + ``Cast`` to float32."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    _convert_graph(out.graph)
    return out


def _convert_graph(graph: onnx.GraphProto) -> None:
    weight_names = {
        node.input[i]
        for node in graph.node
        for i in WEIGHT_INPUTS.get(node.op_type, ())
        if i < len(node.input)
    }
    casts, kept = [], []
    for init in graph.initializer:
        if init.name in weight_names and init.data_type == TensorProto.FLOAT:
            half = numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), f"{init.name}_fp16")
            kept.append(half)
            casts.append(helper.make_node("Cast", [half.name], [init.name], name=f"Cast:{init.name}",
                                          to=TensorProto.FLOAT))
        else:
            kept.append(init)
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(casts + nodes)  # Casts first: the node list stays topologically sorted
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                _convert_graph(attr.g)
