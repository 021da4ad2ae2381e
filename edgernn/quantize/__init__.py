"""Quantized variants of the ONNX window and step graphs: fp16, int8-weights, int8-dynamic, int8-static.

``quantized_variants`` turns the fp32 graphs (fused ``LSTM``/``GRU`` window graph, one-step fused
step graph) into one model per precision and graph, each with its precision report
(``edgernn.quantize.report``) and the op domains it needs. What each precision is, is said once in
``edgernn.precisions``; how each is made:

- **fp16**: the fp32 graphs, weights stored float16 (``edgernn.quantize.fp16``).
- **int8-weights**: the fp32 graphs, weights stored int8 and folded back to float32 when the
  session loads (``edgernn.quantize.weight_only``): a quarter of the file at float speed.
- **int8-dynamic**: LSTM only, each ``LSTM`` node as onnxruntime's ``DynamicQuantizeLSTM``
  (``edgernn.quantize.dynamic_lstm``): int8 arithmetic. A GRU gets no file; the reason is returned
  in ``QuantizedGraphs.not_written`` and lands in the manifest.
- **int8-static**: graphs from ``edgernn.export.onnx_window_scan`` written with int8 products
  (``edgernn.quantize.int8``): ``MatMulInteger`` in a ``Scan`` loop, calibrated on the float Scan
  window graph (``edgernn.quantize.calibration``). Exact integer products, slower than fp32.

Both int8-weights and int8-dynamic round their weights by GPTQ against the activations the fp32
window graph sees on the calibration windows (the training split by default), or to nearest when
there are none; the step graph gets the window's Gram matrices, hence the same int8 values.

Every variant must hold every weight in the precision asked; otherwise export stops with the list.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx

from edgernn.errors import BadInputError, ExportError
from edgernn.precisions import PRECISIONS as DESCRIBED
from edgernn.spec import ModelSpec

PRECISIONS = ("fp16", "int8-weights", "int8-dynamic", "int8-static")
GRAM_WINDOWS = 1024  # calibration windows GPTQ reads at most (int8-weights, int8-dynamic)


@dataclass
class GraphVariant:
    name: str  # "onnx-window-int8-static"
    file: str  # "model.int8-static.onnx"
    graph: str  # "window" | "step"
    precision: str
    model: onnx.ModelProto
    requires: tuple[str, ...] = ()
    report: list[dict[str, Any]] = field(default_factory=list)
    quantization: dict[str, Any] = field(default_factory=dict)


def parse_precisions(text: str | None) -> tuple[str, ...]:
    """``"fp16,int8-dynamic"`` → ``("fp16", "int8-dynamic")``; unknown names are a BadInputError."""
    if text is None:
        return ()
    items = [p.strip().lower() for p in text.split(",") if p.strip()]
    unknown = [p for p in items if p not in PRECISIONS]
    if unknown or not items:
        raise BadInputError(f"--quantize expects a comma-separated list of {', '.join(PRECISIONS)}, "
                            f"got {text!r}")
    return tuple(p for p in PRECISIONS if p in items)


def variant_name(graph: str, precision: str) -> str:
    return f"onnx-{graph}-{precision}"


def variant_file(graph: str, precision: str) -> str:
    stem = "model" if graph == "window" else "model.step"
    return f"{stem}.onnx" if precision == "fp32" else f"{stem}.{precision}.onnx"


@dataclass
class QuantizedGraphs:
    variants: list[GraphVariant] = field(default_factory=list)
    not_written: list[dict[str, str]] = field(default_factory=list)  # {"variant", "reason"}: asked, not written


def quantized_variants(
    spec: ModelSpec,
    weights: Mapping[str, np.ndarray],
    precisions: tuple[str, ...],
    *,
    window_fp32: onnx.ModelProto,
    step_fp32: onnx.ModelProto | None,
    calibration: np.ndarray | None,
    calibration_source: str = "",
    calibration_margin: float = 0.0,
    ir_version: int,
    opset: int,
    progress: bool = False,
) -> QuantizedGraphs:
    """One ``GraphVariant`` per precision and graph (no step graph when ``step_fp32`` is None), and
    the variants asked for but not written, with the reason."""
    from edgernn.export.onnx_window_scan import build_scan_window_graph
    from edgernn.quantize import calibration as calib
    from edgernn.quantize import int8
    from edgernn.quantize.dynamic_lstm import NoInt8Kernel, lstm_to_dynamic_int8
    from edgernn.quantize.fp16 import weights_to_fp16
    from edgernn.quantize.report import precision_report, unmet
    from edgernn.quantize.weight_only import activation_grams, quantize_weights_int8

    if "int8-static" in precisions and calibration is None:
        raise BadInputError("int8-static needs calibration windows; pass --calibration FILE")
    statistics = None  # int8-static: GPTQ rounding and the input range, on the Scan graph's sites
    if calibration is not None and "int8-static" in precisions:
        scan = build_scan_window_graph(spec, weights, ir_version=ir_version, opset=opset)
        statistics = calib.site_statistics(spec, scan, calibration, progress=progress)
        statistics = calib.widened_input_range(statistics, calibration_margin)
    grams = None  # int8-weights / int8-dynamic: GPTQ on the fp32 window graph's activations
    if calibration is not None and {"int8-weights", "int8-dynamic"} & set(precisions):
        grams = activation_grams(window_fp32, {"x": calibration[:GRAM_WINDOWS]})

    result = QuantizedGraphs()
    for precision in precisions:
        how = _how(precision, calibration_source if calibration is not None else "")
        sources = {"window": window_fp32, **({"step": step_fp32} if step_fp32 is not None else {})}
        if precision == "fp16":
            graphs = {graph: weights_to_fp16(model) for graph, model in sources.items()}
        elif precision == "int8-weights":
            graphs = {graph: quantize_weights_int8(model, grams=grams).model for graph, model in sources.items()}
        elif precision == "int8-dynamic":
            try:
                graphs = {graph: lstm_to_dynamic_int8(model, grams=grams).model for graph, model in sources.items()}
            except NoInt8Kernel as e:
                result.not_written.append({"variant": variant_name("*", precision), "reason": str(e)})
                continue
        else:
            graphs = int8.int8_graphs(spec, weights, precision, statistics=statistics, step=step_fp32 is not None,
                                      ir_version=ir_version, opset=opset)
        for graph, model in graphs.items():
            model, requires = int8.finish(model, sources[graph], ir_version=ir_version, opset=opset,
                                          precision=precision)
            report = precision_report(model, precision)
            missed = unmet(report)
            if missed:
                listed = ", ".join(f"{e['initializer']} ({e['stored']})" for e in missed)
                raise ExportError(f"{variant_name(graph, precision)}: weights not in {precision}: {listed}")
            if precision == "int8-static":  # what evaluate and run check inputs against (calibration coverage)
                how = {**how, "input_range": list(calib.input_range(statistics)),
                       "calibration_margin": calibration_margin}
            result.variants.append(GraphVariant(variant_name(graph, precision), variant_file(graph, precision), graph,
                                                precision, model, requires, report, dict(how)))
    return result


def calib_headroom() -> str:
    from edgernn.quantize.calibration import HEADROOM

    return f"{HEADROOM:.0%}"


def _how(precision: str, calibration_source: str) -> dict[str, Any]:
    """The manifest's word on how a precision was reached, plus what ``edgernn.precisions`` says it is."""
    described = DESCRIBED[("onnx", precision)].to_dict()
    rounding = (f"rounded by GPTQ on the calibration windows ({calibration_source})" if calibration_source
                else "rounded to nearest (no calibration data)")
    if precision == "fp16":
        return {"tool": "edgernn.quantize.fp16", **described}
    if precision == "int8-weights":
        return {"tool": "edgernn.quantize.weight_only (Mul(Cast(int8), scale), standard ONNX)", **described,
                "weights": f"int8, symmetric, one float32 scale per output channel, {rounding}"}
    if precision == "int8-dynamic":
        return {"tool": "edgernn.quantize.dynamic_lstm (com.microsoft DynamicQuantizeLSTM)", **described,
                "weights": f"int8, symmetric, one float32 scale per output channel, {rounding}; the head "
                           "weight-only int8", "activations": "uint8, one scale per tensor per step, computed at run "
                           "time by onnxruntime"}
    return {"tool": "edgernn.quantize.int8 (MatMulInteger, standard ONNX)", **described,
            "weights": f"int8, symmetric, one scale per output column (stored float16), {rounding}",
            "activations": "int8 in two passes (~15 bits), fixed scales: the network input's calibrated "
                           "(MinMax), hidden states' from the cell's bound |h| < 1",
            "calibration": f"{calibration_source}; plus {calib_headroom()} standard-normal windows as headroom"}
