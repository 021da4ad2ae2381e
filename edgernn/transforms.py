"""Forecasting transforms: what the model sees and predicts, and the way back to data units.

A ``ForecastTransform`` (kept in ``ModelSpec.forecast_transform``) is applied before the
per-feature normalisation, window by window, and inverted after it, so a device feeds windows in
raw units and gets forecasts in raw units back:

1. ``log``: natural log of inputs and targets (every value must be > 0);
2. ``window_scale``: each window is centred on its own mean and divided by its own standard
   deviation, per feature (a level that drifts over the years no longer leaves the trained range);
3. ``target="change"``: the model predicts the change from the window's last value instead of
   the value (differencing: persistence is the model's zero).

For a window ``a`` (after the log) with mean ``c`` and scale ``s`` (1 and 0 without scaling):
inputs ``(a - c) / s``; target ``(b - ref) / s`` where ``ref`` is the last value for ``change``,
else ``c``; the inverse is ``b = t · s + ref`` and ``exp(b)`` with ``log``. NumPy only: the
runtime imports it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from edgernn.errors import BadInputError

TARGETS = ("value", "change")
MIN_SCALE = 1e-6


@dataclass(frozen=True)
class ForecastTransform:
    target: str = "value"  # "value" | "change": predict the change from the window's last value
    log: bool = False
    window_scale: bool = False

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise BadInputError(f"forecast target must be one of {', '.join(TARGETS)}, got {self.target!r}")

    @property
    def active(self) -> bool:
        return self.target != "value" or self.log or self.window_scale

    def describe(self) -> str:
        parts = (["log"] if self.log else []) + (["per-window scaling"] if self.window_scale else [])
        parts += ["predicts the change from the last value"] if self.target == "change" else []
        return ", ".join(parts) or "none"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ForecastTransform":
        return cls(target=str(d.get("target", "value")), log=bool(d.get("log", False)),
                   window_scale=bool(d.get("window_scale", False)))


@dataclass(frozen=True)
class WindowContext:
    """Per-window quantities the inverse needs: reference level and scale, (N, O) each."""

    ref: np.ndarray
    scale: np.ndarray


def _log(values: np.ndarray, what: str) -> np.ndarray:
    if np.any(values <= 0):
        raise BadInputError(f"the log transform needs {what} > 0, got a minimum of {float(values.min()):g}; "
                            "drop --log for data with zeros or negative values")
    return np.log(values)


def transform_inputs(t: ForecastTransform, x: np.ndarray, outputs: int) -> tuple[np.ndarray, WindowContext]:
    """Raw windows ``x (N, T, F)`` → transformed windows, and the context to invert forecasts of ``outputs``
    values (the window's first ``outputs`` features, as forecasting targets are)."""
    a = np.asarray(x, np.float64)
    if t.log:
        a = _log(a, "inputs")
    if t.window_scale:
        center = a.mean(axis=1, keepdims=True)  # (N, 1, F)
        scale = np.maximum(a.std(axis=1, keepdims=True), MIN_SCALE * (1.0 + np.abs(center)))  # (N, 1, F)
    else:
        center, scale = np.zeros((len(a), 1, a.shape[2])), np.ones((len(a), 1, a.shape[2]))
    ref = a[:, -1, :outputs] if t.target == "change" else center[:, 0, :outputs]  # (N, O)
    return (a - center) / scale, WindowContext(ref=ref, scale=scale[:, 0, :outputs])


def transform_targets(t: ForecastTransform, y: np.ndarray, ctx: WindowContext) -> np.ndarray:
    """Raw targets ``y (N, O)`` → what the model learns to predict."""
    b = np.asarray(y, np.float64)
    if t.log:
        b = _log(b, "targets")
    return (b - ctx.ref) / ctx.scale


def invert_outputs(t: ForecastTransform, out: np.ndarray, ctx: WindowContext) -> np.ndarray:
    """The model's (de-normalised) outputs ``(N, O)`` → forecasts in data units."""
    b = np.asarray(out, np.float64) * ctx.scale + ctx.ref
    return np.exp(b) if t.log else b
