"""A small helper for writing ONNX graphs node by node with readable names.

The window and step graphs are written directly from a ``ModelSpec`` and its weights with
``onnx.helper``: no tracing, so export takes milliseconds, the IR version and opset are what we
set, and every op in the file is one we chose.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgernn import __version__
from edgernn.errors import ExportError
from edgernn.spec import ModelSpec

# What edgernn writes unless a target runtime asks for less. IR 8 / opset 17 load in
# onnxruntime >= 1.14 (early 2023), which covers what devices commonly run.
DEFAULT_IR_VERSION = 8
DEFAULT_OPSET = 17


@dataclass
class GraphBuilder:
    name: str
    nodes: list[onnx.NodeProto] = field(default_factory=list)
    initializers: list[onnx.TensorProto] = field(default_factory=list)
    inputs: list[onnx.ValueInfoProto] = field(default_factory=list)
    outputs: list[onnx.ValueInfoProto] = field(default_factory=list)
    _counter: int = 0

    def unique(self, stem: str) -> str:
        self._counter += 1
        return f"{stem}_{self._counter}"

    def const(self, name: str, value: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(np.array(value, order="C"), name=name))  # 0-d stays 0-d
        return name

    def op(self, op_type: str, inputs: list[str], out: str | None = None, *, n_out: int = 1, **attrs) -> str | list[str]:
        """Append a node; return its output name (or names when ``n_out`` > 1)."""
        stem = out or self.unique(op_type.lower())
        outputs = [stem] if n_out == 1 else [f"{stem}_{k}" for k in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outputs, name=f"{op_type}:{stem}", **attrs))
        return outputs[0] if n_out == 1 else outputs

    def add_input(self, name: str, shape: list[int | str], elem_type: int = TensorProto.FLOAT) -> str:
        self.inputs.append(helper.make_tensor_value_info(name, elem_type, shape))
        return name

    def add_output(self, name: str, shape: list[int | str], elem_type: int = TensorProto.FLOAT) -> None:
        self.outputs.append(helper.make_tensor_value_info(name, elem_type, shape))

    def declare(self, inputs, outputs) -> None:
        """Graph inputs and outputs from ``(name, shape)`` or ``(name, shape, elem_type)`` tuples."""
        for io in inputs:
            self.add_input(*io)
        for io in outputs:
            self.add_output(*io)

    def build(self, spec: ModelSpec, graph_kind: str, *, ir_version: int, opset: int) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, self.name, self.inputs, self.outputs, self.initializers)
        model = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", opset)],
            producer_name="edgernn",
            producer_version=__version__,
        )
        model.ir_version = ir_version
        helper.set_model_props(
            model,
            {"edgernn.spec": json.dumps(spec.to_dict()), "edgernn.graph": graph_kind, "edgernn.version": __version__},
        )
        try:
            onnx.checker.check_model(model, full_check=True)
        except onnx.checker.ValidationError as e:  # e.g. an opset too old for the ops written here
            first = str(e).strip().splitlines()[0]
            raise ExportError(
                f"cannot write the {graph_kind} graph at opset {opset}, IR version {ir_version} "
                f"(defaults: opset {DEFAULT_OPSET}, IR {DEFAULT_IR_VERSION}): {first}"
            ) from None
        return model
