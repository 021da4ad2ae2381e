"""Quantize a TFLite step graph with LiteRT's quantizer (``ai-edge-quantizer``).

- fp16: FULLY_CONNECTED weights stored float16 (a DEQUANTIZE in front of each); float compute.
- int8-dynamic: weights int8, one scale per tensor; activations float32, each matmul's input
  rounded to int8 per row (with the row's own min and max) on the fly by the kernel; the head float.
- int8-static: weights int8, one scale per tensor, biases int64; every activation int16 (symmetric,
  calibrated), integer-only kernels; QUANTIZE/DEQUANTIZE at the graph's edges.

The int8 variants are quantized from the step graph's ``row_scaled`` layout (``tflite_step``) and
their head is corrected afterwards (``tflite_int8``); this module holds the quantizer's side.

Full-integer graphs take int16 activations (int8 weights, "16x8" in LiteRT's terms); accelerators
that take int8 only (Edge TPU) cannot run them. Weights keep one scale per tensor
(``granularity="tensor"``), per-row resolution coming from the row-scaled layout;
``granularity="channel"`` is there for ai-edge-litert-only devices. Calibration steps the fp32 step
graph through the calibration windows and records every step's inputs; in the full-integer graph
every calibrated range is then widened ``RANGE_HEADROOM`` times. Why each, measured:
docs/design-quantization-notes.md, "Measurements behind the code".

The full-integer graph keeps float inputs and outputs (a QUANTIZE op per input and a DEQUANTIZE op
per output), so every variant takes the same feeds and the window graph can loop over any of them.
"""

from __future__ import annotations

import warnings

import numpy as np

from edgernn.errors import ExportError, MissingDependencyError
from edgernn.export.tflite_builder import from_bytes, make_operator, schema, to_bytes
from edgernn.runtime.tflite_backend import TfliteBackend

PRECISIONS = ("fp32", "fp16", "int8-dynamic", "int8-static")
GRANULARITY = {"tensor": "TENSORWISE", "channel": "CHANNELWISE"}
RANGE_HEADROOM = 2.0  # calibrated int16 ranges are widened this many times
HEAD_SCOPE = "^y;$"  # the head's FULLY_CONNECTED (the quantizer's op scope: its output names)

FP16_RECIPE = [{
    "regex": ".*",
    "operation": "FULLY_CONNECTED",
    "algorithm_key": "float_casting",
    "op_config": {
        "weight_tensor_config": {"num_bits": 16, "dtype": "FLOAT"},
        "compute_precision": "FLOAT",
        "explicit_dequantize": True,
    },
}]


def _quantizer():
    try:
        from ai_edge_quantizer import quantizer
    except ImportError:
        raise MissingDependencyError("ai-edge-quantizer", "tflite", "quantizing a TFLite model") from None
    return quantizer


def recipe_for(precision: str, granularity: str = "tensor") -> list[dict]:
    """The ai-edge-quantizer recipe (its JSON form) for one precision."""
    if granularity not in GRANULARITY:
        raise ExportError(f"weight granularity must be tensor or channel, got {granularity!r}")
    if precision == "fp16":
        return FP16_RECIPE
    weight = {"num_bits": 8, "symmetric": True, "granularity": GRANULARITY[granularity], "dtype": "INT"}
    if precision == "int8-dynamic":
        op_config = {"weight_tensor_config": weight, "compute_precision": "INTEGER", "explicit_dequantize": False}
        return [
            {"regex": ".*", "operation": "FULLY_CONNECTED", "algorithm_key": "min_max_uniform_quantize",
             "op_config": op_config},
            # the head stays float: its input's on-the-fly int8 rounding lands on the output unaveraged
            # (built-in sum GRU, 2 layers H=64: test MSE deviation from fp32 1.7 % → 0.5 %); H·O weights
            {"regex": HEAD_SCOPE, "operation": "FULLY_CONNECTED", "algorithm_key": "no_quantize", "op_config": {}},
        ]
    if precision == "int8-static":
        activation = {"num_bits": 16, "symmetric": True, "granularity": "TENSORWISE", "dtype": "INT"}
        op_config = {"activation_tensor_config": activation, "weight_tensor_config": weight,
                     "compute_precision": "INTEGER", "explicit_dequantize": False}
        return [{"regex": ".*", "operation": "*", "algorithm_key": "min_max_uniform_quantize", "op_config": op_config}]
    raise ExportError(f"TFLite precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")


def calibration_feeds(step_fp32: bytes, state_names: list[str], windows: np.ndarray, num_layers: int,
                      hidden_size: int) -> list[dict[str, np.ndarray]]:
    """The feeds the fp32 step graph gets while it runs through ``windows (N, T, F)`` from zero state,
    stacked along the batch axis into one feed of batch N·T (min/max calibration sees the same values
    as with T feeds, in one interpreter call). The final states are fed once more, so the state
    inputs' ranges hold every state the windows reach."""
    backend = TfliteBackend.from_bytes(step_fp32)
    N = windows.shape[0]
    state = {name: np.zeros((num_layers, N, hidden_size), np.float32) for name in state_names}
    steps = []
    for t in range(windows.shape[1] + 1):
        x_t = windows[:, min(t, windows.shape[1] - 1)]
        feed = {"x_t": np.ascontiguousarray(x_t, np.float32), **state}
        steps.append(feed)
        if t < windows.shape[1]:
            out = backend.run(feed)
            state = {name: out[name.replace("_in", "_out")] for name in state_names}
    stacked = {"x_t": np.concatenate([f["x_t"] for f in steps], axis=0)}  # (N·(T+1), F)
    for name in state_names:
        stacked[name] = np.concatenate([f[name] for f in steps], axis=1)  # (L, N·(T+1), H)
    return [stacked]


def quantize_step(step_fp32: bytes, precision: str, feeds: list[dict[str, np.ndarray]] | None = None,
                  granularity: str = "tensor") -> bytes:
    """The step graph in ``precision``; ``int8-static`` needs ``feeds`` (from ``calibration_feeds``)."""
    if precision == "fp32":
        return step_fp32
    quantizer = _quantizer()
    q = quantizer.Quantizer(bytearray(step_fp32), recipe_for(precision, granularity))
    calibration = None
    with warnings.catch_warnings():  # the calibrator asks the interpreter to keep every tensor, and it warns
        warnings.simplefilter("ignore", UserWarning)
        if q.need_calibration:
            if not feeds:
                raise ExportError(f"TFLite {precision} needs calibration windows, got none")
            calibration = widen_ranges(q.calibrate({"serving_default": feeds}), RANGE_HEADROOM)
        result = q.quantize(calibration, enable_progress_report=False, enable_progress_bar=False)
    data = bytes(result.quantized_model)
    if precision == "int8-dynamic":
        return asymmetric_inputs(data)
    return float_io(data) if precision == "int8-static" else data


def asymmetric_inputs(data: bytes) -> bytes:
    """Ask every FULLY_CONNECTED to round its float input to int8 with the row's own min and max.

    XNNPACK (ai-edge-litert's default CPU path) quantizes a dynamic-range matmul's input that way
    whatever the flag; the builtin kernels (tflite-runtime 2.14, or no delegate) read the flag and
    otherwise round symmetrically. With it set, what export measures (validation, the output
    correction's fit) holds on every runtime: on the 36 built-in models, test-metric drops on
    tflite-runtime 2.14 and on ai-edge-litert without XNNPACK are within 0.3 points of ai-edge-litert's
    (without the flag: up to 1 point apart, e.g. ``sum`` LSTM +2.0 % vs +1.05 % MSE).
    """
    s = schema()
    model = from_bytes(data)
    for graph in model.subgraphs:
        for op in graph.operators:
            if op.builtinOptionsType == s.BuiltinOptions.FullyConnectedOptions:
                op.builtinOptions.asymmetricQuantizeInputs = True
    return to_bytes(model)


def widen_ranges(calibration: dict, factor: float) -> dict:
    """Each calibrated tensor's [min, max] scaled by ``factor`` away from zero (zero bounds stay)."""
    for qsv in calibration.values():
        if "min" in qsv and "max" in qsv:
            qsv["min"] = np.minimum(np.asarray(qsv["min"]) * factor, 0.0).astype(np.float32)
            qsv["max"] = np.maximum(np.asarray(qsv["max"]) * factor, 0.0).astype(np.float32)
    return calibration


def float_io(data: bytes) -> bytes:
    """Give a quantized graph float inputs and outputs: QUANTIZE in, DEQUANTIZE out.

    Each graph input and output is found through the signature (the quantizer renames tensors it
    requantizes, e.g. ``y`` → ``y_quantized``, but keeps the signature's keys); the float tensor
    that replaces it takes the signature's name, so every precision has the same feeds and fetches.
    """
    s = schema()
    model = from_bytes(data)
    graph = model.subgraphs[0]
    sig = model.signatureDefs[0]
    head, tail = [], []

    def float_twin(key: str, index: int) -> int:
        inner = graph.tensors[index]
        suffix = {s.TensorType.INT8: "int8", s.TensorType.INT16: "int16"}.get(inner.type, "q")
        inner.name = f"{key}_{suffix}"
        outer = s.TensorT()
        outer.name, outer.type, outer.buffer = key, s.TensorType.FLOAT32, 0
        outer.shape, outer.shapeSignature = list(inner.shape), inner.shapeSignature
        graph.tensors.append(outer)
        return len(graph.tensors) - 1

    for entry in sig.inputs:
        key, index = _name(entry), entry.tensorIndex
        if graph.tensors[index].type != s.TensorType.FLOAT32:
            outer = float_twin(key, index)
            head.append(make_operator(model, "QUANTIZE", [outer], [index], version=_QUANTIZE_VERSION))
            graph.inputs = [outer if i == index else i for i in graph.inputs]
            entry.tensorIndex = outer
        graph.tensors[entry.tensorIndex].name = key
    for entry in sig.outputs:
        key, index = _name(entry), entry.tensorIndex
        if graph.tensors[index].type != s.TensorType.FLOAT32:
            outer = float_twin(key, index)
            tail.append(make_operator(model, "DEQUANTIZE", [index], [outer], version=_QUANTIZE_VERSION))
            graph.outputs = [outer if i == index else i for i in graph.outputs]
            entry.tensorIndex = outer
        graph.tensors[entry.tensorIndex].name = key
    graph.operators = head + graph.operators + tail
    return to_bytes(model)


_QUANTIZE_VERSION = 2


def _name(obj) -> str:
    return obj.name.decode() if isinstance(obj.name, bytes) else obj.name


# What each precision stores, by the role of a constant: (weight, bias, row scale).
STORED = {
    "fp32": ("float32", "float32", "float32"),
    "fp16": ("float16", "float32", "float32"),
    "int8-dynamic": ("int8", "float32", "float32"),
    "int8-static": ("int8", "int64", "int16"),
}
_TYPE_NAMES = {"FLOAT32": "float32", "FLOAT16": "float16", "INT8": "int8", "INT16": "int16", "INT32": "int32",
               "INT64": "int64", "UINT8": "uint8"}


def precision_report(data: bytes, precision: str, subgraph: int = 0, notes: dict[str, str] | None = None) -> list[dict]:
    """One entry per constant input of every FULLY_CONNECTED (weight, bias) and row-scale MUL of ``subgraph``,
    read back from the file: the dtype stored and whether it is the one ``precision`` asks for.

    Same keys as the ONNX report (``edgernn.quantize.report``); ``notes`` (initializer → text) explain
    a constant left unquantized on purpose, which stays ``achieved: False``.
    """
    s = schema()
    type_names = {getattr(s.TensorType, k): v for k, v in _TYPE_NAMES.items() if hasattr(s.TensorType, k)}
    ops = {getattr(s.BuiltinOperator, k): k for k in ("FULLY_CONNECTED", "MUL", "DEQUANTIZE")}
    model = from_bytes(data)
    graph = model.subgraphs[subgraph]
    where = "main" if subgraph == 0 else "while body"
    producers = {out: op for op in graph.operators for out in op.outputs}
    codes = [max(oc.builtinCode, oc.deprecatedBuiltinCode) for oc in model.operatorCodes]
    asked_weight, asked_bias, asked_scale = STORED[precision]
    report = []
    for op in graph.operators:
        kind = ops.get(codes[op.opcodeIndex])
        if kind not in ("FULLY_CONNECTED", "MUL"):
            continue
        roles = (("weight", asked_weight), ("bias", asked_bias)) if kind == "FULLY_CONNECTED" else ()
        for position, index in enumerate(op.inputs):
            if index < 0:
                continue
            tensor, role = graph.tensors[index], None
            if producers.get(index) is not None and ops.get(codes[producers[index].opcodeIndex]) == "DEQUANTIZE":
                tensor = graph.tensors[producers[index].inputs[0]]  # fp16: the float16 constant behind a DEQUANTIZE
            if not _is_constant(model, tensor):
                continue
            if kind == "FULLY_CONNECTED" and position in (1, 2):
                role, asked = roles[position - 1]
            elif kind == "MUL" and _name(tensor).endswith("_row_scale"):
                role, asked = "row scale", asked_scale
            if role is None:
                continue
            stored = type_names.get(tensor.type, str(tensor.type))
            q = tensor.quantization
            entry = {
                "node": _name(graph.tensors[op.outputs[0]]), "op": kind, "graph": where, "input": role,
                "initializer": _name(tensor), "shape": [int(d) for d in tensor.shape], "asked": precision,
                "stored": stored, "compute": _compute(precision, kind, stored, asked_weight),
                "achieved": stored == asked, "scales": len(q.scale) if q is not None and q.scale is not None else 0,
            }
            if notes and entry["initializer"] in notes:
                entry["note"] = notes[entry["initializer"]]
            report.append(entry)
    return report


def _is_constant(model, tensor) -> bool:
    return tensor.buffer > 0 and model.buffers[tensor.buffer].data is not None


def _compute(precision: str, op: str, stored: str, asked_weight: str) -> str:
    if precision == "int8-static":
        return "integer (int16 activations, int8 weights)" if op == "FULLY_CONNECTED" else "integer (int16)"
    if precision == "int8-dynamic" and op == "FULLY_CONNECTED" and stored == asked_weight:
        return "integer (input quantized to int8 per row on the fly)"
    return "float32"
