"""Synthetic tasks to try edgernn without a data file.

Each is deterministic from its seed, generated in milliseconds, and small enough that a small
LSTM learns it in well under a minute on two CPU cores.

- ``sum``: regression. x ~ U(0, 1), shape (N, T, 1); y = x summed over time, shape (N, 1).
- ``sine``: forecasting. One long series of three sines with random phases plus Gaussian noise
  (std 0.1), cut into windows of T steps; y = the next value, shape (N, 1).
- ``bands``: classification into 4 classes. Each window is a sinusoid with random phase,
  amplitude U(0.5, 1.5) and offset U(-0.5, 0.5), plus Gaussian noise (std 0.5), whose frequency
  is drawn uniformly from one of four bands (cycles per step): slow 0.02-0.05, medium 0.06-0.10,
  fast 0.11-0.17, very_fast 0.18-0.26. Classes are balanced.
"""

from __future__ import annotations

import numpy as np

from edgernn.data.datasets import Dataset
from edgernn.data.windowing import make_windows
from edgernn.errors import BadInputError

BUILTIN_TASKS: dict[str, str] = {
    "sum": "regression: predict the sum of a window of U(0, 1) values (3000 windows x 20 steps)",
    "sine": "forecast: next value of a noisy three-tone sine series (3000 windows x 30 steps)",
    "bands": "classification: which of 4 frequency bands a noisy sinusoid is in (2000 windows x 50 steps)",
}

DEFAULT_SIZES: dict[str, tuple[int, int]] = {"sum": (3000, 20), "sine": (3000, 30), "bands": (2000, 50)}

BAND_LABELS = ("slow", "medium", "fast", "very_fast")
BANDS = ((0.02, 0.05), (0.06, 0.10), (0.11, 0.17), (0.18, 0.26))  # cycles per step
SINE_PERIODS = (25.0, 7.3, 61.0)  # steps
SINE_AMPLITUDES = (1.0, 0.5, 0.3)


def make_builtin(task: str, *, seed: int = 0, n: int | None = None, window: int | None = None) -> Dataset:
    """Generate built-in ``task`` with ``n`` windows of ``window`` steps (defaults per task)."""
    if task not in BUILTIN_TASKS:
        raise BadInputError(f"unknown task {task!r}; built-in tasks: {', '.join(BUILTIN_TASKS)}")
    default_n, default_window = DEFAULT_SIZES[task]
    n = default_n if n is None else n
    window = default_window if window is None else window
    if not isinstance(n, int) or n < 1:
        raise BadInputError(f"n must be a positive integer, got {n!r}")
    if not isinstance(window, int) or window < 2:
        raise BadInputError(f"window must be an integer of at least 2, got {window!r}")
    rng = np.random.default_rng(seed)
    if task == "sum":
        return _make_sum(rng, n, window)
    if task == "sine":
        return _make_sine(rng, n, window)
    return _make_bands(rng, n, window)


def _make_sum(rng: np.random.Generator, n: int, window: int) -> Dataset:
    x = rng.uniform(0.0, 1.0, size=(n, window, 1)).astype(np.float32)  # (N, T, 1)
    y = x.sum(axis=1)  # (N, 1)
    return Dataset(x, y, "regression", name="sum")


def _make_sine(rng: np.random.Generator, n: int, window: int) -> Dataset:
    t = np.arange(n + window, dtype=np.float64)  # n windows of `window` steps, each with a next value
    phases = rng.uniform(0.0, 2 * np.pi, size=len(SINE_PERIODS))
    series = sum(a * np.sin(2 * np.pi * t / p + ph) for a, p, ph in zip(SINE_AMPLITUDES, SINE_PERIODS, phases))
    series = series + rng.normal(0.0, 0.1, size=t.shape)
    x, y = make_windows(series[:, None].astype(np.float32), window=window, horizon=1, stride=1, source="sine")
    return Dataset(x, y, "forecast", name="sine")


def _make_bands(rng: np.random.Generator, n: int, window: int) -> Dataset:
    y = rng.permutation(np.arange(n) % len(BANDS)).astype(np.int64)  # balanced classes, (N,)
    bounds = np.array(BANDS)  # (K, 2)
    frequency = rng.uniform(bounds[y, 0], bounds[y, 1])  # (N,)
    phase = rng.uniform(0.0, 2 * np.pi, size=n)
    amplitude = rng.uniform(0.5, 1.5, size=n)
    offset = rng.uniform(-0.5, 0.5, size=n)
    t = np.arange(window, dtype=np.float64)
    clean = amplitude[:, None] * np.sin(2 * np.pi * frequency[:, None] * t + phase[:, None])  # (N, T)
    x = clean + offset[:, None] + rng.normal(0.0, 0.5, size=(n, window))  # (N, T)
    return Dataset(x[:, :, None].astype(np.float32), y, "classification", labels=BAND_LABELS, name="bands")
