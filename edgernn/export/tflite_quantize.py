"""Quantize an fp32 TFLite step graph with LiteRT's quantizer (``ai-edge-quantizer``).

| precision      | recipe                                   | what changes in the file                          |
|----------------|------------------------------------------|---------------------------------------------------|
| fp16           | float_casting, weight only               | FULLY_CONNECTED weights float16 + DEQUANTIZE       |
| int8-dynamic   | dynamic, int8 weights                    | weights int8; activations quantized on the fly by the kernel |
| int8-static    | static int8, calibrated                  | weights and every activation int8; QUANTIZE/DEQUANTIZE at the graph's edges |

Weights are quantized per tensor (symmetric) by default, not per channel: measured on a 2-layer
H=64 LSTM/GRU, per-tensor gives the same parity, files 20–27 % smaller (the schema stores a float
scale and an int64 zero point per channel), and the dynamic variant runs correctly on
tflite-runtime 2.14, whose hybrid FULLY_CONNECTED kernel reads only the first scale of a
per-channel weight (max error 0.14 instead of 1e-3). ``granularity="channel"`` asks for per channel:
on trained models it is the more accurate one where the device runs ai-edge-litert (built-in ``sum``
task, 2-layer H=64 LSTM, int8-dynamic test MSE +3.6 % per channel vs +21 % per tensor).

Known limit: full int8 puts the LSTM cell state in int8 too; on the built-in ``sum`` and ``bands``
LSTMs that costs more than ``evaluate``'s default budget (MSE ×10, −3 accuracy points), while GRU
and ``sine`` stay within it. An int16 cell-state path (a16w8 for the ``c_*`` tensors) is the fix.

The full-int8 graph keeps float inputs and outputs (the quantizer makes them int8; a QUANTIZE op
per input and a DEQUANTIZE op per output are added back), so every variant takes the same feeds
and the window graph can loop over any of them. Calibration steps the fp32 step graph through
calibration windows and records every step's inputs: the states the model really visits.
"""

from __future__ import annotations

import warnings

import numpy as np

from edgernn.errors import ExportError, MissingDependencyError
from edgernn.export.tflite_builder import from_bytes, make_operator, schema, to_bytes

PRECISIONS = ("fp32", "fp16", "int8-dynamic", "int8-static")

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

# The weight dtype each precision asks for (the precision report compares it with the file's).
ASKED_WEIGHT_DTYPE = {"fp32": "float32", "fp16": "float16", "int8-dynamic": "int8", "int8-static": "int8"}


def _quantizer():
    try:
        from ai_edge_quantizer import quantizer
    except ImportError:
        raise MissingDependencyError("ai-edge-quantizer", "tflite", "quantizing a TFLite model") from None
    return quantizer


GRANULARITY = {"tensor": "TENSORWISE", "channel": "CHANNELWISE"}


def recipe_for(precision: str, granularity: str = "tensor") -> list[dict]:
    """The ai-edge-quantizer recipe (its JSON form) for one precision."""
    if granularity not in GRANULARITY:
        raise ExportError(f"weight granularity must be tensor or channel, got {granularity!r}")
    if precision == "fp16":
        return FP16_RECIPE
    weight = {"num_bits": 8, "symmetric": True, "granularity": GRANULARITY[granularity], "dtype": "INT"}
    if precision == "int8-dynamic":
        op_config = {"weight_tensor_config": weight, "compute_precision": "INTEGER", "explicit_dequantize": False}
        return [{"regex": ".*", "operation": "FULLY_CONNECTED", "algorithm_key": "min_max_uniform_quantize",
                 "op_config": op_config}]
    if precision == "int8-static":
        activation = {"num_bits": 8, "symmetric": False, "granularity": "TENSORWISE", "dtype": "INT"}
        op_config = {"activation_tensor_config": activation, "weight_tensor_config": weight,
                     "compute_precision": "INTEGER", "explicit_dequantize": False}
        return [{"regex": ".*", "operation": "*", "algorithm_key": "min_max_uniform_quantize", "op_config": op_config}]
    raise ExportError(f"TFLite precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")


def calibration_feeds(step_fp32: bytes, state_names: list[str], windows: np.ndarray, num_layers: int,
                      hidden_size: int) -> list[dict[str, np.ndarray]]:
    """The feeds the fp32 step graph gets while it runs through ``windows (N, T, F)`` from zero state,
    stacked along the batch axis into one feed of batch N·T (min/max calibration sees the same values
    as with T feeds, in one interpreter call)."""
    from edgernn.runtime.tflite_backend import TfliteBackend

    backend = TfliteBackend.from_bytes(step_fp32)
    N = windows.shape[0]
    state = {name: np.zeros((num_layers, N, hidden_size), np.float32) for name in state_names}
    steps = []
    for t in range(windows.shape[1]):
        feed = {"x_t": np.ascontiguousarray(windows[:, t], np.float32), **state}
        steps.append(feed)
        out = backend.run(feed)
        state = {name: out[name.replace("_in", "_out")] for name in state_names}
    stacked = {"x_t": np.concatenate([f["x_t"] for f in steps], axis=0)}  # (N·T, F)
    for name in state_names:
        stacked[name] = np.concatenate([f[name] for f in steps], axis=1)  # (L, N·T, H)
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
            calibration = q.calibrate({"serving_default": feeds})
        result = q.quantize(calibration, enable_progress_report=False, enable_progress_bar=False)
    data = bytes(result.quantized_model)
    return float_io(data) if precision == "int8-static" else data


def float_io(data: bytes) -> bytes:
    """Give a full-int8 graph float inputs and outputs: QUANTIZE in, DEQUANTIZE out, names kept."""
    s = schema()
    model = from_bytes(data)
    graph = model.subgraphs[0]
    head, tail = [], []

    def float_twin(index: int, suffix: str) -> int:
        inner = graph.tensors[index]
        name = inner.name.decode() if isinstance(inner.name, bytes) else inner.name
        inner.name = f"{name}_{suffix}"
        outer = s.TensorT()
        outer.name, outer.type, outer.buffer = name, s.TensorType.FLOAT32, 0
        outer.shape, outer.shapeSignature = list(inner.shape), inner.shapeSignature
        graph.tensors.append(outer)
        return len(graph.tensors) - 1

    new_inputs = []
    for index in graph.inputs:
        if graph.tensors[index].type == s.TensorType.FLOAT32:
            new_inputs.append(index)
            continue
        outer = float_twin(index, "int8")
        head.append(make_operator(model, "QUANTIZE", [outer], [index], version=2))
        new_inputs.append(outer)
    new_outputs = []
    for index in graph.outputs:
        if graph.tensors[index].type == s.TensorType.FLOAT32:
            new_outputs.append(index)
            continue
        outer = float_twin(index, "int8")
        tail.append(make_operator(model, "DEQUANTIZE", [index], [outer], version=2))
        new_outputs.append(outer)
    graph.operators = head + graph.operators + tail
    graph.inputs, graph.outputs = new_inputs, new_outputs
    _retarget_signature(model, new_inputs, new_outputs)
    return to_bytes(model)


def _retarget_signature(model, inputs: list[int], outputs: list[int]) -> None:
    """Point the signature at the (float) graph inputs and outputs, by tensor name."""
    graph = model.subgraphs[0]
    by_name = {}
    for index in list(inputs) + list(outputs):
        name = graph.tensors[index].name
        by_name[name.decode() if isinstance(name, bytes) else name] = index
    for sig in model.signatureDefs or []:
        for m in list(sig.inputs) + list(sig.outputs):
            key = m.name.decode() if isinstance(m.name, bytes) else m.name
            if key in by_name:
                m.tensorIndex = by_name[key]


def precision_report(data: bytes, precision: str, subgraph: int = 0) -> list[dict]:
    """Per weight and bias tensor of ``subgraph``, read back through the interpreter: asked vs achieved dtype.

    Weights (``*_W``) are asked in the precision's weight dtype; biases (``*_b``) stay float32
    except in full int8, where the kernels take them as int32.
    """
    from edgernn.runtime.tflite_backend import load_interpreter

    interpreter = load_interpreter(model_content=data)
    report = []
    for detail in interpreter.get_tensor_details(subgraph_index=subgraph):
        name = detail["name"]
        if name.endswith("_W"):
            kind, asked = "weight", ASKED_WEIGHT_DTYPE[precision]
        elif name.endswith("_b"):
            kind, asked = "bias", "int32" if precision == "int8-static" else "float32"
        else:
            continue
        achieved = np.dtype(detail["dtype"]).name
        scales = detail.get("quantization_parameters", {}).get("scales", np.empty(0))
        report.append({
            "tensor": name, "kind": kind, "shape": [int(d) for d in detail["shape"]], "asked": asked,
            "achieved": achieved, "ok": achieved == asked, "scales": int(np.size(scales)),
        })
    return report
