"""The int8 TFLite step graphs: row-scaled layout, GPTQ rounding, quantizer, head correction.

1. The step graph is written in its ``row_scaled`` layout (``tflite_step``): per-row resolution of
   int8 weights with one scale per tensor, and the LSTM's input and hidden matmuls apart.
2. Its weights are rounded to the int8 grid for their matmuls' outputs (``tflite_rounding``, GPTQ)
   on the inputs the fp32 step graph sees over the calibration windows.
3. ``ai-edge-quantizer`` quantizes it (``tflite_quantize``): int8-dynamic, or int8-static with
   int16 activations calibrated on the states the fp32 step graph visits in the calibration windows.
4. Output correction: the quantized window graph and the fp32 one run the calibration windows; a
   gain and an offset per output, fitted by least squares so the quantized outputs match the fp32
   ones, are folded into the head's weights and bias, and the graph is quantized again (the head's
   int8 weights keep their integers; its scale and bias take the correction).

Step 4's fit uses the calibration windows, targets the fp32 model (not the labels), and is kept
only when it brings the quantized outputs closer to fp32 on those windows; the manifest records gain,
offset and the deviation before and after. Why step 4, and what each step buys, measured:
docs/design-quantization-notes.md, "Measurements behind the code".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from edgernn.export.tflite_quantize import (
    GRANULARITY, RANGE_HEADROOM, calibration_feeds, quantize_step, recipe_for,
)
from edgernn.export.tflite_rounding import matmul_inputs, round_weights
from edgernn.export.tflite_step import layout_scales, step_model_bytes
from edgernn.export.tflite_window import wrap_step
from edgernn.runtime.tflite_backend import TfliteBackend
from edgernn.spec import ModelSpec

INT8_PRECISIONS = ("int8-dynamic", "int8-static")
BATCH = 256


@dataclass(frozen=True)
class Int8Step:
    """A quantized step graph and what the manifest says about how it was made."""

    data: bytes = field(repr=False)
    quantization: dict
    notes: str


def int8_step(spec: ModelSpec, weights: Mapping[str, np.ndarray], precision: str, windows: np.ndarray,
              *, granularity: str = "tensor", windows_source: str = "calibration windows") -> Int8Step:
    """The ``precision`` step graph of ``spec``, quantized and output-corrected on ``windows (N, T, F)``."""
    recipe_for(precision, granularity)  # refuses an unknown precision or granularity before any work
    scales = layout_scales(spec, weights)

    def build(w: Mapping[str, np.ndarray]) -> bytes:
        return step_model_bytes(spec, w, row_scaled=True, scales=scales)

    step_fp32 = build(weights)
    states = ["h_in", "c_in"] if spec.has_cell_state else ["h_in"]
    # the step graph's inputs do not depend on its weights' rounding or on the head: one set of feeds
    # calibrates the fp32 graph's ranges, gives GPTQ its inputs, and serves the corrected graph too
    feeds = calibration_feeds(step_fp32, states, windows, spec.num_layers, spec.hidden_size)
    inputs = matmul_inputs(spec, feeds[0], len(windows))
    int_head = precision == "int8-static"  # int8-dynamic keeps the head float
    rounded = round_weights(spec, weights, scales, inputs, granularity=granularity, head=int_head)
    static_feeds = feeds if precision == "int8-static" else None
    step = quantize_step(build(rounded), precision, static_feeds, granularity)

    y_fp32 = window_outputs(step_fp32, spec, windows)
    y_q = window_outputs(step, spec, windows)
    gain, offset = fit_output_correction(y_q, y_fp32)
    head_fixed = with_corrected_head({**rounded, "head.weight": weights["head.weight"]}, gain, offset)
    head_fixed = round_weights(spec, head_fixed, scales, inputs, granularity=granularity, recurrent=False,
                               head=int_head)
    corrected = quantize_step(build(head_fixed), precision, static_feeds, granularity)
    y_c = window_outputs(corrected, spec, windows)
    before, after = _rms(y_q - y_fp32), _rms(y_c - y_fp32)
    kept = after < before
    correction = {
        "fitted_on": f"{len(windows)} {windows_source}", "gain": _round(gain), "offset": _round(offset),
        "rms_deviation_from_fp32": {"before": float(f"{before:.3g}"), "after": float(f"{after:.3g}")},
        "applied": bool(kept),
    }
    info = {**_how(precision, granularity, len(windows), windows_source), "output_correction": correction}
    return Int8Step(corrected if kept else step, info, _notes(precision, granularity, info))


def window_outputs(step: bytes, spec: ModelSpec, windows: np.ndarray) -> np.ndarray:
    """``y`` of the window graph around ``step`` for every window, in batches."""
    backend = TfliteBackend.from_bytes(wrap_step(step, spec))
    return np.concatenate([backend.run({"x": np.ascontiguousarray(windows[i : i + BATCH], np.float32)})["y"]
                           for i in range(0, len(windows), BATCH)])


def fit_output_correction(y_q: np.ndarray, y_fp32: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per output ``o``: ``gain, offset`` minimising ``|gain·y_q[:, o] + offset − y_fp32[:, o]|²``."""
    y_q, y_fp32 = np.asarray(y_q, np.float64), np.asarray(y_fp32, np.float64)
    outputs = y_q.shape[1]
    gain, offset = np.ones(outputs), np.zeros(outputs)
    for o in range(outputs):
        if np.std(y_q[:, o]) < 1e-9:  # a constant output: the offset alone
            offset[o] = np.mean(y_fp32[:, o] - y_q[:, o])
            continue
        design = np.stack([y_q[:, o], np.ones(len(y_q))], axis=1)  # (N, 2)
        (gain[o], offset[o]), *_ = np.linalg.lstsq(design, y_fp32[:, o], rcond=None)
    return gain, offset


def with_corrected_head(weights: Mapping[str, np.ndarray], gain: np.ndarray, offset: np.ndarray) -> dict:
    """Weights whose head gives ``gain · y + offset``: W ← gain·W (per output row), b ← gain·b + offset."""
    out = dict(weights)
    W, b = np.asarray(weights["head.weight"], np.float64), np.asarray(weights["head.bias"], np.float64)
    out["head.weight"] = (W * gain[:, None]).astype(np.float32)  # (O, H)
    out["head.bias"] = (b * gain + offset).astype(np.float32)  # (O,)
    return out


def head_note(precision: str) -> dict[str, str]:
    """Precision-report notes for the constants a variant leaves unquantized on purpose."""
    if precision == "int8-dynamic":
        return {"head_W": "kept float32 on purpose: the head's input, rounded to int8 on the fly, lands on the "
                          "output unaveraged (H·O weights)"}
    return {}


def _how(precision: str, granularity: str, n: int, source: str) -> dict:
    rows = ("int8, symmetric, one scale per tensor; each recurrent weight row pre-divided by its own scale, "
            "which a MUL after the matmul puts back")
    weights = rows if granularity == "tensor" else "int8, symmetric, one scale per output row (per channel)"
    weights += f"; rounded by GPTQ on the matmuls' inputs over {n} {source}"
    if precision == "int8-dynamic":
        return {"weights": weights, "activations": "float32; each recurrent matmul's input rounded to int8 per row "
                "on the fly", "head": "float32", "granularity": GRANULARITY[granularity].lower()}
    return {"weights": weights, "activations": f"int16, symmetric, calibrated on {n} {source}, ranges widened "
            f"x{RANGE_HEADROOM:g}", "head": "int8 weights", "compute": "integer only",
            "granularity": GRANULARITY[granularity].lower()}


def _notes(precision: str, granularity: str, info: dict) -> str:
    c = info["output_correction"]
    parts = ["int8 weights" + ("" if granularity == "tensor" else " per channel"),
             "float32 activations, head float32" if precision == "int8-dynamic" else "int16 activations"]
    if c["applied"]:
        parts.append(f"head corrected on {c['fitted_on']} (rms deviation from fp32 "
                     f"{c['rms_deviation_from_fp32']['before']:.3g} → {c['rms_deviation_from_fp32']['after']:.3g})")
    return "; ".join(parts)


def _rms(a: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(np.asarray(a, np.float64)))))


def _round(a: np.ndarray) -> list[float]:
    return [float(f"{v:.6g}") for v in np.asarray(a).ravel()]
