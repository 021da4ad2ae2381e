"""Cutting one long series into (window, target) pairs for forecasting.

Window ``i`` covers series steps ``[i*stride, i*stride + window)``; its target is the row
``horizon`` steps after the window's last step, ``series[i*stride + window - 1 + horizon]``,
all features (so a forecaster predicts every column of the series).
"""

from __future__ import annotations

import numpy as np

from edgernn.errors import BadInputError


def make_windows(
    series: np.ndarray, *, window: int, horizon: int = 1, stride: int = 1, source: str = "series"
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``x`` (N, window, F) and ``y`` (N, F) from ``series`` (L, F)."""
    if series.ndim != 2:
        raise BadInputError(f"{source}: expected a series of shape (T, F), got {series.shape}")
    length = series.shape[0]
    span = window + horizon  # steps one (window, target) pair needs
    if length < span:
        raise BadInputError(
            f"{source}: series has {length} steps, fewer than window {window} + horizon {horizon}; "
            "pass a smaller --window or use a longer series"
        )
    starts = np.arange(0, length - span + 1, stride)  # (N,)
    x = series[starts[:, None] + np.arange(window)]  # (N, window, F)
    y = series[starts + window - 1 + horizon]  # (N, F)
    return x, y
