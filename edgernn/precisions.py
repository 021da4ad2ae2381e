"""Every precision edgernn writes, named once: what it stores, what it computes in, where it is fast.

The manifest copies the entry of each variant's (format, precision) into its ``quantization``
block (``storage``, ``compute``, ``fast_on``, ``slow_on``) next to the latency ratio to fp32
measured at export (``latency``); ``edgernn info`` prints them, and falls back to this table for
bundles written before the block existed. Standard library only: the device runtime reads it.

ONNX precisions:

- ``fp16``: weights stored float16, cast to float32 when the session loads.
- ``int8-weights`` (weight-only int8): int8 weights with one float32 scale per output channel in
  front of the fused ``LSTM``/``GRU`` ops, folded to float32 when the session loads: a quarter of
  the file, float speed, float32 arithmetic (``edgernn.quantize.weight_only``).
- ``int8-dynamic``: int8 arithmetic with run-time activation scales. LSTM only, through
  onnxruntime's ``com.microsoft.DynamicQuantizeLSTM``; onnxruntime has no int8 GRU kernel, so a GRU
  gets no ONNX int8-dynamic file and the manifest says why (``int8-weights`` is the small GRU file).
  Bundles written before edgernn 0.x held a ``MatMulInteger`` graph in a ``Scan`` loop under this
  name; they still load and verify (``LEGACY``).
- ``int8-static``: int8 × int8 products (``MatMulInteger``, standard ONNX) with activation scales
  fixed at export, in a ``Scan`` loop: exact integer arithmetic on any ONNX runtime, but slower than fp32
  on onnxruntime's CPU provider (figures: docs/design-quantization-notes.md). Written for runtimes that need integer
  products, never for speed.

TFLite precisions (``edgernn.export.tflite_quantize``): ``fp16``; ``int8-dynamic`` (int8 weights,
activations quantized at run time by XNNPACK's dynamic-range kernels); ``int8-static``, whose
activations are int16 ("16x8" in LiteRT's terms), not int8.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

ONNXRUNTIME_FOLDS = "onnxruntime (CPU; the int8 weights are folded to float32 when the session loads)"


@dataclass(frozen=True)
class PrecisionInfo:
    storage: str
    compute: str
    fast_on: tuple[str, ...]  # runtimes that run it at least as fast as fp32
    slow_on: tuple[str, ...] = ()  # runtimes measured to run it slower than fp32, and why

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["fast_on"], d["slow_on"] = list(self.fast_on), list(self.slow_on)
        return d


PRECISIONS: dict[tuple[str, str], PrecisionInfo] = {
    ("onnx", "fp32"): PrecisionInfo("float32", "float32", ("onnxruntime (fused LSTM/GRU kernels)",)),
    ("onnx", "fp16"): PrecisionInfo(
        "float16 weights, float32 inputs and outputs",
        "float32 (weights cast to float32 once, when the session loads)", ("onnxruntime",)),
    ("onnx", "int8-weights"): PrecisionInfo(
        "int8 weights (one float32 scale per output channel); biases float32",
        "float32 (weights dequantized once, when the session loads)", (ONNXRUNTIME_FOLDS,)),
    ("onnx", "int8-dynamic"): PrecisionInfo(
        "int8 weights (one float32 scale per output channel); biases float32",
        "int8 × int8 products with activation scales computed at run time (com.microsoft DynamicQuantizeLSTM); "
        "gates and state float32",
        ("onnxruntime (CPU, contrib op DynamicQuantizeLSTM)",),
        ("runtimes without onnxruntime's contrib ops cannot load it",)),
    ("onnx", "int8-static"): PrecisionInfo(
        "int8 weights (one scale per output column); biases float32",
        "int8 × int8 → int32 products (MatMulInteger, two passes per activation, fixed scales), in a Scan loop",
        (), ("onnxruntime CPU: a Scan loop of small integer ops, measured 4-18× the fp32 time; "
             "use int8-weights for a small file at float speed",)),
    ("tflite", "fp32"): PrecisionInfo("float32", "float32", ("LiteRT (XNNPACK)", "tflite-runtime")),
    ("tflite", "fp16"): PrecisionInfo("float16 weights", "float32 (weights dequantized when the interpreter loads)",
                                      ("LiteRT (XNNPACK)", "tflite-runtime")),
    ("tflite", "int8-dynamic"): PrecisionInfo(
        "int8 weights; biases float32",
        "int8 products with activations quantized at run time (dynamic range), the rest float32",
        ("LiteRT (XNNPACK dynamic-range kernels)",)),
    ("tflite", "int8-static"): PrecisionInfo(
        "int8 weights, int64 biases; activations int16 (LiteRT's 16x8 mode, not int8)",
        "integer: int16 activations × int8 weights",
        (), ("LiteRT / tflite-runtime: int16 kernels are reference kernels, slower than float",)),
}

# What a bundle written before this table (edgernn ≤ the int8 Scan graphs) holds under these names.
LEGACY: dict[tuple[str, str], PrecisionInfo] = {
    ("onnx", "int8-dynamic"): PrecisionInfo(
        "int8 weights (one scale per output column); biases float32",
        "int8 × int8 → int32 products (MatMulInteger) with run-time scales per row, in a Scan loop",
        (), ("onnxruntime CPU: a Scan loop of small integer ops, measured 4-21× the fp32 time",)),
}


def describe(format: str, precision: str, recorded: dict[str, Any] | None = None) -> dict[str, Any]:
    """A variant's storage, compute, fast_on and slow_on: as its manifest recorded them, else from the
    tables here (marked ``"described_by": "edgernn"``), else ``{}`` for an unknown precision."""
    recorded = recorded or {}
    if "storage" in recorded and "fast_on" in recorded:
        return {k: recorded[k] for k in ("storage", "compute", "fast_on", "slow_on", "latency") if k in recorded}
    legacy = format == "onnx" and precision == "int8-dynamic" and "MatMulInteger" in str(recorded.get("tool", ""))
    info = (LEGACY if legacy else PRECISIONS).get((format, precision))
    return {**info.to_dict(), "described_by": "edgernn (not recorded in this bundle)"} if info else {}
