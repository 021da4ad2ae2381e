"""Calibration coverage: how much of what a model is fed lies outside int8-static's calibrated input range.

int8-static fixes the scale of the network's (normalised) input at export from the calibration
windows; a value outside that range is clipped. Data that drifts (a trending series) leaves it, and
the accuracy with it: ``evaluate`` and ``run`` report the share of input values outside the range,
and ``export --calibration-margin`` widens it. NumPy only.
"""

from __future__ import annotations

import numpy as np


def input_range(variant) -> tuple[float, float] | None:
    """The calibrated input range a variant records in its manifest entry, or None (not int8-static)."""
    value = (getattr(variant, "quantization", None) or {}).get("input_range")
    return (float(value[0]), float(value[1])) if value else None


def outside_share(x_normalized: np.ndarray, value_range: tuple[float, float],
                  lengths: np.ndarray | None = None) -> float:
    """The share of input values (real steps only) outside ``value_range``."""
    x = np.asarray(x_normalized)
    if lengths is not None:
        x = x[np.arange(x.shape[1])[None, :] < np.asarray(lengths)[:, None]]
    lo, hi = value_range
    return float(np.mean((x < lo) | (x > hi))) if x.size else 0.0


def coverage_line(variant_name: str, share: float, value_range: tuple[float, float]) -> str:
    lo, hi = value_range
    verdict = "all inside" if share == 0 else "clipped by the variant; re-export with --calibration-margin or " \
        "--calibration FILE holding such data"
    return (f"calibration coverage of {variant_name}: {100 * share:.2f} % of input values outside the calibrated "
            f"range [{lo:.3g}, {hi:.3g}] (normalised units): {verdict}")
