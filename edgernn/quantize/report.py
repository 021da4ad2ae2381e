"""The precision report: for every weight-bearing node of a model file, what was asked and what is there.

It is read from the ONNX file itself, never from what the quantizer was told, so a weight a
quantizer skipped shows up as ``float32`` where ``int8`` was asked. Each weight is traced back
through ``Cast``/``DequantizeLinear``/``Identity`` to the initializer that stores it (in the graph
or an enclosing graph, for ``Scan`` bodies), and each node's compute is read from how its
activation input arrives: ``DynamicQuantizeLinear`` → int8 with a run-time scale per tensor;
``QuantizeLinear`` of a value divided by a row maximum (``ReduceMax``) → int8 with a run-time scale
per row; ``QuantizeLinear`` with a stored scale → int8 with a fixed scale. A second
``MatMulInteger`` of the same weight whose activation is a residual (``Sub``) is the second pass
of the first (``edgernn.quantize.int8_matmul``): the entry says "two passes" instead of repeating.
"""

from __future__ import annotations

from typing import Any

import onnx
from onnx import TensorProto

# Weight-bearing ops and the input positions that hold weights (and biases) when constant.
WEIGHT_INPUTS: dict[str, tuple[int, ...]] = {
    "LSTM": (1, 2, 3), "GRU": (1, 2, 3), "MatMul": (1,), "Gemm": (1, 2),
    "MatMulInteger": (1,), "QLinearMatMul": (3,), "DynamicQuantizeMatMul": (1,), "DynamicQuantizeLSTM": (1, 2, 3),
}
INPUT_ROLES = {"LSTM": ("x", "W", "R", "B"), "GRU": ("x", "W", "R", "B"), "Gemm": ("x", "weight", "bias"),
               "DynamicQuantizeLSTM": ("x", "W", "R", "B")}
STORED = {TensorProto.FLOAT: "float32", TensorProto.FLOAT16: "float16", TensorProto.INT8: "int8",
          TensorProto.UINT8: "uint8", TensorProto.DOUBLE: "float64"}
EXPECTED_STORAGE = {"fp32": {"float32"}, "fp16": {"float16"}, "int8-weights": {"int8"}, "int8-dynamic": {"int8", "uint8"},
                    "int8-static": {"int8", "uint8"}}
PASS_THROUGH = ("Cast", "DequantizeLinear", "Identity", "Mul")  # Mul: int8 weight × its scale (weight-only int8)
FLOAT_OPS = ("LSTM", "GRU", "RNN", "MatMul", "Gemm")
# Biases stay float32 in every int8 precision (they are added to float32 sums).
BIAS_INPUT = {"LSTM": 3, "GRU": 3, "RNN": 3, "DynamicQuantizeLSTM": 3, "Gemm": 2}


def precision_report(model: onnx.ModelProto, asked: str) -> list[dict[str, Any]]:
    """One entry per constant weight input of every weight-bearing node, subgraphs included."""
    entries: list[dict[str, Any]] = []
    _walk(model.graph, [], "main", asked, entries)
    return entries


def unmet(report: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Entries whose stored precision is not the one asked."""
    return [e for e in report if not e["achieved"]]


def _walk(graph: onnx.GraphProto, outer: list[onnx.GraphProto], where: str, asked: str, entries: list) -> None:
    scopes = [graph] + outer  # innermost first
    producers = {out: node for node in graph.node for out in node.output}
    for node in graph.node:
        for i in WEIGHT_INPUTS.get(node.op_type, ()):
            if i >= len(node.input) or not node.input[i]:
                continue
            init = _stored_initializer(node.input[i], producers, scopes)
            if init is None:  # an activation, not a weight
                continue
            if node.op_type == "MatMulInteger" and _is_residual_pass(node, producers):
                first = next((e for e in entries if e["graph"] == where and e["initializer"] == init.name), None)
                if first is not None:
                    first["compute"] = first["compute"][:-1] + ", two passes)"
                    continue
            stored = STORED.get(init.data_type, str(init.data_type))
            roles = INPUT_ROLES.get(node.op_type)
            entries.append({
                "node": node.name or node.output[0],
                "op": node.op_type,
                "graph": where,
                "input": roles[i] if roles else "weight",
                "initializer": init.name,
                "shape": list(init.dims),
                "asked": asked,
                "stored": stored,
                "compute": _compute(node, producers, stored),
                "achieved": stored in EXPECTED_STORAGE.get(asked, {stored})
                or (asked.startswith("int8") and stored == "float32" and i == BIAS_INPUT.get(node.op_type)),
            })
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                _walk(attr.g, scopes, f"{node.name or node.output[0]} body", asked, entries)


def _stored_initializer(name: str, producers: dict, scopes: list[onnx.GraphProto]) -> onnx.TensorProto | None:
    seen = 0
    while name in producers and seen < 8:
        node = producers[name]
        if node.op_type not in PASS_THROUGH:
            return None
        name, seen = node.input[0], seen + 1
    for graph in scopes:
        for init in graph.initializer:
            if init.name == name:
                return init
    return None


def _compute(node: onnx.NodeProto, producers: dict, stored: str = "") -> str:
    if node.op_type in ("QLinearMatMul",):
        return "int8 (calibrated scales)"
    if node.op_type in ("DynamicQuantizeMatMul", "DynamicQuantizeLSTM"):
        return "int8 (run-time scales)"
    source = producers.get(node.input[0])
    if node.op_type == "MatMulInteger":
        if source is not None and source.op_type == "DynamicQuantizeLinear":
            return "int8 (run-time scale per tensor)"
        if source is not None and _has_ancestor(source, "ReduceMax", producers):
            return "int8 (run-time scale per row)"
        return "int8 (fixed scale)"
    if source is not None and source.op_type == "DequantizeLinear":
        return "int8 (calibrated scales, QDQ)"
    if stored == "int8" and node.op_type in FLOAT_OPS:
        return "float32 (int8 weights folded to float32 when the session loads)"
    return "float32"


def _is_residual_pass(node: onnx.NodeProto, producers: dict) -> bool:
    quantize = producers.get(node.input[0])
    return quantize is not None and quantize.op_type == "QuantizeLinear" and \
        getattr(producers.get(quantize.input[0]), "op_type", "") == "Sub"


def _has_ancestor(node: onnx.NodeProto, op_type: str, producers: dict, depth: int = 4) -> bool:
    """Whether an ``op_type`` node feeds ``node`` within ``depth`` steps (in the same graph)."""
    frontier = [node]
    for _ in range(depth):
        frontier = [producers[i] for n in frontier for i in n.input if i in producers]
        if any(n.op_type == op_type for n in frontier):
            return True
    return False
