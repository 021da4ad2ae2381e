"""Quantized variants of the ONNX window and step graphs: fp16, int8-dynamic, int8-static.

``quantized_variants`` turns the fp32 graphs into one model per precision and graph, each with its
precision report (``edgernn.quantize.report``) and the op domains it needs. Which graph each
precision starts from:

- **fp16**: the fp32 graphs as they are (fused ``LSTM``/``GRU`` window graph, elementary step
  graph), weights stored float16 (``edgernn.quantize.fp16``).
- **int8-dynamic / int8-static**: graphs from ``edgernn.export.onnx_window_scan`` written with int8
  products (``edgernn.quantize.int8``). onnxruntime's quantizer cannot quantize a ``GRU`` node at
  all and its static mode leaves an ``LSTM`` node float, so the int8 window graph computes the
  recurrence in a ``Scan`` whose body holds the recurrent product as a ``MatMulInteger``; the int8
  step graph keeps the input and recurrent products apart so ``x_t`` and ``h`` get a scale each.
  The calibration windows (``calibration``: the training split by default; required by int8-static,
  optional for int8-dynamic, whose weights are then rounded to nearest) are run once through the
  float Scan window graph, for both graphs (``edgernn.quantize.calibration``).

Every variant must hold every weight in the precision asked; otherwise export stops with the list.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx

from edgernn.errors import BadInputError, ExportError
from edgernn.spec import ModelSpec

PRECISIONS = ("fp16", "int8-dynamic", "int8-static")


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
) -> list[GraphVariant]:
    """One ``GraphVariant`` per precision and graph (no step graph when ``step_fp32`` is None)."""
    from edgernn.export.onnx_window_scan import build_scan_window_graph
    from edgernn.quantize import calibration as calib
    from edgernn.quantize import int8
    from edgernn.quantize.fp16 import weights_to_fp16
    from edgernn.quantize.report import precision_report, unmet

    if "int8-static" in precisions and calibration is None:
        raise BadInputError("int8-static needs calibration windows; pass --calibration FILE")
    statistics = None  # for GPTQ rounding (both int8 variants) and int8-static's input range
    if calibration is not None and any(p.startswith("int8") for p in precisions):
        scan = build_scan_window_graph(spec, weights, ir_version=ir_version, opset=opset)
        statistics = calib.site_statistics(spec, scan, calibration, progress=progress)
        statistics = calib.widened_input_range(statistics, calibration_margin)

    out: list[GraphVariant] = []
    for precision in precisions:
        how = _how(precision, calibration_source if statistics is not None else "")
        if precision == "fp16":
            graphs = {"window": weights_to_fp16(window_fp32)}
            if step_fp32 is not None:
                graphs["step"] = weights_to_fp16(step_fp32)
        else:
            graphs = int8.int8_graphs(spec, weights, precision, statistics=statistics, step=step_fp32 is not None,
                                      ir_version=ir_version, opset=opset)
        for graph, model in graphs.items():
            source = window_fp32 if graph == "window" else step_fp32
            model, requires = int8.finish(model, source, ir_version=ir_version, opset=opset, precision=precision)
            report = precision_report(model, precision)
            missed = unmet(report)
            if missed:
                listed = ", ".join(f"{e['initializer']} ({e['stored']})" for e in missed)
                raise ExportError(f"{variant_name(graph, precision)}: weights not in {precision}: {listed}")
            if precision == "int8-static":  # what evaluate and run check inputs against (calibration coverage)
                how = {**how, "input_range": list(calib.input_range(statistics)),
                       "calibration_margin": calibration_margin}
            out.append(GraphVariant(variant_name(graph, precision), variant_file(graph, precision), graph, precision,
                                    model, requires, report, dict(how)))
    return out


def calib_headroom() -> str:
    from edgernn.quantize.calibration import HEADROOM

    return f"{HEADROOM:.0%}"


def _how(precision: str, calibration_source: str) -> dict[str, Any]:
    """The manifest's word on how a precision was reached and what the CPU computes in."""
    from edgernn.quantize.fp16 import COMPUTE_NOTE

    if precision == "fp16":
        return {"tool": "edgernn.quantize.fp16", "weights": "float16", "compute": COMPUTE_NOTE}
    rounding = (f"rounded by GPTQ on the calibration windows ({calibration_source})" if calibration_source
                else "rounded to nearest (no calibration data)")
    how = {"tool": "edgernn.quantize.int8 (MatMulInteger, standard ONNX)",
           "weights": f"int8, symmetric, one scale per output column (stored float16), {rounding}",
           "compute": "int8 × int8 → int32 matrix products (MatMulInteger), two per product (coarse and "
                      "residual activation); biases, gates and state float32"}
    if precision == "int8-dynamic":
        return {**how, "activations": "int8 in two passes (~15 bits), scale computed at run time per row "
                                      "(each window, each step)"}
    return {**how, "activations": "int8 in two passes (~15 bits), fixed scales: the network input's calibrated "
                                  "(MinMax), hidden states' from the cell's bound |h| < 1",
            "calibration": f"{calibration_source}; plus {calib_headroom()} standard-normal windows as headroom"}
