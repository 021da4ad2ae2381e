"""Rounding the int8 weights for their matmuls' outputs (GPTQ) before the quantizer stores them.

Rounding every weight to its nearest int8 level minimises each weight's own error. GPTQ (Frantar et
al., 2022, "GPTQ: accurate post-training quantization for generative pre-trained transformers")
rounds a matrix column by column and moves each column's rounding error onto the columns not yet
rounded, weighted by the inverse second moment of the matmul's input, so the error of the matmul's
*output* on the calibration inputs is what is minimised. A recurrent net feeds that output back every step, and nearest rounding's error shows up as a
drift of the state (measured: docs/design-quantization-notes.md).

The inputs are the ones the fp32 step graph sees over the calibration windows (the same feeds the
full-integer graph is calibrated with). The weights handed to the quantizer are already on its
grid: each stored tensor's step (max |w| / 127, which the quantizer recomputes) is kept by leaving
its largest element as it is, so the quantizer's own rounding gives back these integers exactly.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from edgernn.spec import ModelSpec

LEVELS = 127  # symmetric int8
DAMPING = 0.01  # of the mean diagonal of the inputs' second moment, as in GPTQ


def matmul_inputs(spec: ModelSpec, feed: Mapping[str, np.ndarray], windows: int) -> dict[str, np.ndarray]:
    """What each recurrent matmul and the head read over the calibration windows: ``(n, in)`` arrays
    keyed ``x_l{l}``, ``h_l{l}`` and ``head``, from ``calibration_feeds``' stacked feed (N·(T+1)
    rows, step-major, the last block the final states)."""
    N = windows
    h_in = np.asarray(feed["h_in"], np.float64)  # (L, N·(T+1), H)
    T = h_in.shape[1] // N - 1
    x = np.asarray(feed["x_t"], np.float64)[: N * T]  # (N·T, F)
    out = {}
    for l in range(spec.num_layers):
        out[f"x_l{l}"] = x if l == 0 else h_in[l - 1, N:]  # layer l reads layer l−1's new state
        out[f"h_l{l}"] = h_in[l, : N * T]  # and its own previous state
    out["head"] = h_in[spec.num_layers - 1, N:]
    return out


def round_weights(spec: ModelSpec, weights: Mapping[str, np.ndarray], scales: Mapping[str, np.ndarray],
                  inputs: Mapping[str, np.ndarray], *, granularity: str = "tensor", recurrent: bool = True,
                  head: bool = True) -> dict[str, np.ndarray]:
    """``weights`` with the recurrent matrices (and the head) GPTQ-rounded to the int8 grid of the
    ``row_scaled`` layout with ``scales`` (``tflite_step.layout_scales``): ``W / s`` is on the grid."""
    out = dict(weights)
    for l in range(spec.num_layers if recurrent else 0):
        W_ih = np.asarray(weights[f"rnn.weight_ih_l{l}"], np.float64)
        W_hh = np.asarray(weights[f"rnn.weight_hh_l{l}"], np.float64)
        if spec.cell == "lstm":
            s_x = s_h = np.asarray(scales[f"gates_l{l}"], np.float64)[:, None]
        else:
            s_x = np.asarray(scales[f"x_gates_l{l}"], np.float64)[:, None]
            s_h = np.asarray(scales[f"h_gates_l{l}"], np.float64)[:, None]
        out[f"rnn.weight_ih_l{l}"] = (gptq(W_ih / s_x, inputs[f"x_l{l}"], granularity) * s_x).astype(np.float32)
        out[f"rnn.weight_hh_l{l}"] = (gptq(W_hh / s_h, inputs[f"h_l{l}"], granularity) * s_h).astype(np.float32)
    if head:
        out["head.weight"] = gptq(np.asarray(weights["head.weight"], np.float64), inputs["head"],
                                  granularity).astype(np.float32)
    return out


def gptq(W: np.ndarray, X: np.ndarray, granularity: str = "tensor") -> np.ndarray:
    """``W (out, in)`` rounded to the symmetric int8 grid of step max|W|/127 (per tensor, or per row
    for ``granularity="channel"``) so that ``|(W − Q) Xᵀ|²`` over the inputs ``X (n, in)`` is small;
    the returned Q is dequantized (float) and keeps each grid's largest element."""
    W = np.array(W, np.float64)
    original = W.copy()
    if granularity == "channel":
        top = np.abs(W).max(axis=1, keepdims=True)  # (out, 1)
        fixed = [(r, int(np.argmax(np.abs(W[r])))) for r in range(W.shape[0])]
    else:
        top = np.full((W.shape[0], 1), np.abs(W).max())
        fixed = [tuple(int(i) for i in np.unravel_index(np.argmax(np.abs(W)), W.shape))]
    step = np.where(top > 0, top / LEVELS, 1.0)[:, 0]  # (out,)
    if not np.any(original) or len(X) == 0:
        return original
    fixed_in = {}
    for r, c in fixed:
        fixed_in.setdefault(c, []).append(r)
    upper = _inverse_cholesky(np.asarray(X, np.float64))  # (in, in), upper triangular
    Q = np.zeros_like(W)
    for j in range(W.shape[1]):
        column = W[:, j]
        rows = fixed_in.get(j, [])
        column[rows] = original[rows, j]  # the element that sets the grid's step stays at ±127 steps
        Q[:, j] = np.clip(np.round(column / step), -LEVELS, LEVELS) * step
        error = (column - Q[:, j]) / upper[j, j]
        W[:, j + 1 :] -= np.outer(error, upper[j, j + 1 :])
    return Q


def _inverse_cholesky(X: np.ndarray) -> np.ndarray:
    """Upper Cholesky factor of the inverse of the damped second moment ``XᵀX / n``."""
    H = X.T @ X / len(X)
    dead = np.diag(H) == 0  # an input that is always zero: its weights' error costs nothing
    H[dead, dead] = 1.0
    H[np.diag_indices_from(H)] += DAMPING * np.mean(np.diag(H))
    return np.linalg.cholesky(np.linalg.inv(H)).T
