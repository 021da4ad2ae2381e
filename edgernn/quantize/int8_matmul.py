"""int8 matrix products as standard ONNX integer ops: the ``MatMulWriter`` of the int8 variants.

``Int8MatMul`` writes ``a @ W`` (see ``edgernn.export.onnx_window_scan.MatMulWriter``) as

    q   = QuantizeLinear(a / step)         int8 activation (stored uint8, zero point 128)
    acc = MatMulInteger(q, W_q)            int8 × int8 → int32
    y   = Cast(acc) · step · s_W           float32 (…, N)

- **Weights**: int8, symmetric, one scale per output column (``s_W`` (N,), "per channel"), so each
  gate unit keeps its own range instead of the largest weight of the matrix setting the step of
  all. Rounded to nearest, or by ``edgernn.quantize.rounding.gptq`` when the activations' Gram
  matrix is given. The scales are stored as float16: each is first rounded up to a value float16
  holds exactly (``column_scales``), so this changes no product.
- **Activations**, per site (``ActivationQuant``):
  - ``scale="row"``: ``step = max |a_row| / 127``, computed at run time for every row (each window
    at each step). A window's prediction then does not depend on the other windows of its batch,
    and the window graph quantizes every step exactly as the step graph does.
  - ``scale="fixed"``: ``step = max(|lo|, |hi|) / 127`` from a range known at export (calibrated,
    or the cell's bound on its state).
  - ``passes=2``: the residual ``a - step · q`` (within ±step/2) is quantized again with a step 254×
    finer and multiplied by the same ``W_q``; the two int32 products are combined as
    ``254 · acc + acc_residual``. Every product is still int8 × int8, and the activation carries
    ~15 bits instead of ~8.
  Activations are symmetric (inputs are normalised, states centred on 0), stored as uint8 with zero
  point 128: onnxruntime's int8 kernels are fast for uint8 × int8 (int8 × int8 is
  much slower; figures in docs/design-quantization-notes.md). On x86 CPUs *without* VNNI, uint8 × int8 products can saturate
  in onnxruntime's AVX2 kernel (its ``session.x64quantprecision`` option guards against it); ARM
  and VNNI CPUs compute them exactly.

Opset 13 or newer (``ReduceMax`` takes its axes as an input from opset 18); no contrib ops.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from onnx import TensorProto

from edgernn.export.graph_builder import GraphBuilder
from edgernn.quantize.rounding import QMAX, gptq, round_to_nearest

FINER = 2 * QMAX  # the residual pass's step is step / 254: ±step/2 maps onto ±127
TINY = np.float32(1e-30)  # the row maximum of an all-zero row (the zero state), instead of 0
# 254 · acc + acc_residual fits int32 while K · 127 · 127 · 255 < 2^31; longer products combine in float32
INT32_COMBINE_MAX_K = (2**31 - 1) // (QMAX * QMAX * (FINER + 1))


@dataclass(frozen=True)
class ActivationQuant:
    scale: str  # "row" (run time, per row) | "fixed" (per tensor, from ``ranges``)
    passes: int = 1  # 1 or 2


def column_scales(W: np.ndarray, multiplier: float) -> tuple[np.ndarray, np.ndarray, int]:
    """Per-column weight scales ``s_W`` (N,) such that ``multiplier · s_W · 2^shift`` is exactly the
    float16 vector returned: ``max |W[:, n]| / 127`` rounded up (by < 0.1 %) to such a value.
    Returns ``s_W`` (float64), the float16 vector and ``shift``."""
    amax = np.abs(W).max(axis=0).astype(np.float64)
    top = float(amax.max()) / QMAX * multiplier
    shift = int(np.floor(-np.log2(top))) + 10 if top > 0 else 0  # largest stored value in [1024, 2048)
    wanted = np.where(amax > 0, amax / QMAX, 2.0**-shift / multiplier) * multiplier * 2.0**shift
    half = wanted.astype(np.float16)
    half = np.where(half.astype(np.float64) < wanted, np.nextafter(half, np.float16(np.inf)), half)
    half = np.maximum(half, np.float16(2.0**-14))  # stay out of float16's subnormals
    return half.astype(np.float64) / 2.0**shift / multiplier, half, shift


class Int8MatMul:
    """``MatMulWriter`` for int8 graphs: ``quant[site]`` says how each site's activation is quantized,
    ``ranges[site]`` (``(lo, hi)``) holds the range of every site with a fixed scale, and
    ``grams[site]`` (``AᵀA / n``), where given, has the site's weights rounded by GPTQ."""

    def __init__(self, quant: Mapping[str, ActivationQuant], *, opset: int,
                 ranges: Mapping[str, tuple[float, float]] | None = None,
                 grams: Mapping[str, np.ndarray] | None = None):
        self.quant = quant
        self.opset = opset
        self.ranges = ranges or {}
        self.grams = grams or {}

    def __call__(self, g: GraphBuilder, a: str, W: np.ndarray, out: str, site: str) -> str:
        """Initializers are named after the site (``W_hh_T_l0_int8``), intermediate tensors after
        ``out`` (``hW_q``), and the constants every product shares are stored once per graph."""
        how = self.quant[site]
        W = np.asarray(W, np.float64)
        zero = _shared(g, "zero_point_128", np.array(128, np.uint8))
        two_pass, in_int32 = how.passes == 2, how.passes == 2 and W.shape[0] <= INT32_COMBINE_MAX_K
        # `units` is what QuantizeLinear rounds with the scale `unit`: the activation itself with its
        # fixed step, or the activation divided by its row maximum with the step 1/127
        if how.scale == "row":
            amax = self._row_max(g, a, out)  # (…, 1)
            units, step, step_value = g.op("Div", [a, amax], f"{out}_u"), amax, 1.0 / QMAX
            unit = _shared(g, "step_1_127", np.float32(step_value))
        else:
            lo, hi = self.ranges[site]
            units = a
            step = step_value = max(abs(lo), abs(hi), float(TINY)) / QMAX
            unit = g.const(f"{site}_step", np.float32(step_value))
        # the float32 factor per column that turns the int32 sums into the product
        multiplier = step_value / (FINER if in_int32 else 1.0)
        s_W, half, shift = column_scales(W, multiplier)
        W_q = gptq(W, s_W, self.grams[site]) if site in self.grams else round_to_nearest(W, s_W)
        w = g.const(f"{site}_int8", W_q)  # (K, N)
        scale = g.op("Mul", [  # onnxruntime folds this into a float32 constant when the session loads
            g.op("Cast", [g.const(f"{site}_scale", half)], f"{site}_scale_f32", to=TensorProto.FLOAT),
            _shared(g, f"pow2_{-shift}", np.float32(2.0**-shift))], f"{site}_column_scale")

        q = g.op("QuantizeLinear", [units, unit, zero], f"{out}_q")
        acc = g.op("MatMulInteger", [q, w, zero], f"{out}_i")  # (…, N) int32; weights' zero point 0
        if two_pass:  # the residual, within ±unit/2, quantized 254× finer
            fine = (_shared(g, "step_1_127_254", np.float32(1 / QMAX / FINER)) if how.scale == "row"
                    else g.const(f"{site}_fine_step", np.float32(step_value / FINER)))
            residual = g.op("Sub", [units, g.op("DequantizeLinear", [q, unit, zero], f"{out}_dq")], f"{out}_r")
            acc_r = g.op("MatMulInteger", [g.op("QuantizeLinear", [residual, fine, zero], f"{out}_rq"), w, zero],
                         f"{out}_ri")
        if two_pass and in_int32:
            coarse = g.op("Mul", [acc, _shared(g, "times_254", np.array(FINER, np.int32))], f"{out}_i254")
            acc = g.op("Cast", [g.op("Add", [coarse, acc_r], f"{out}_i2")], f"{out}_f", to=TensorProto.FLOAT)
        elif two_pass:
            acc_r = g.op("Mul", [g.op("Cast", [acc_r], f"{out}_rf", to=TensorProto.FLOAT),
                                 _shared(g, "ratio_1_254", np.float32(1 / FINER))], f"{out}_rs")
            acc = g.op("Add", [g.op("Cast", [acc], f"{out}_f", to=TensorProto.FLOAT), acc_r], f"{out}_f2")
        else:
            acc = g.op("Cast", [acc], f"{out}_f", to=TensorProto.FLOAT)
        if how.scale == "row":
            return g.op("Mul", [g.op("Mul", [acc, scale], f"{out}_c"), step], out)
        return g.op("Mul", [acc, scale], out)

    def _row_max(self, g: GraphBuilder, a: str, out: str) -> str:
        """``max |a_row|`` over the last axis, (…, 1); an all-zero row gets a tiny one instead of 0."""
        absolute = g.op("Abs", [a], f"{out}_abs")
        if self.opset >= 18:
            amax = g.op("ReduceMax", [absolute, _shared(g, "last_axis", np.array([-1], np.int64))], f"{out}_max0")
        else:
            amax = g.op("ReduceMax", [absolute], f"{out}_max0", axes=[-1])  # keepdims: 1 by default
        return g.op("Max", [amax, _shared(g, "tiny", TINY)], f"{out}_max")


def _shared(g: GraphBuilder, name: str, value: np.ndarray) -> str:
    """A constant stored once per graph, whichever product asks for it first."""
    if not any(init.name == name for init in g.initializers):
        g.const(name, value)
    return name
