"""Per-feature normalisation fitted on the training split, kept in ``ModelSpec.normalization``.

Inputs: mean and standard deviation (population, ddof=0) of each feature over every window and
step of the training set (for variable-length data, over the real steps only, never the padding). Targets of regression and forecasting: the same per output; a
classifier's targets are left alone (empty ``y_mean``/``y_std``). A standard deviation below
``MIN_STD`` (a constant feature) is replaced by 1, so the feature is only centred.
"""

from __future__ import annotations

import numpy as np

from edgernn.data.datasets import Dataset
from edgernn.errors import BadInputError
from edgernn.spec import Normalization

MIN_STD = 1e-6


def fit_normalization(train: Dataset) -> Normalization:
    if train.n == 0:
        raise BadInputError(f"{train.name or 'dataset'}: expected training samples to fit normalisation, got none")
    x = train.x.astype(np.float64)
    if train.lengths is not None:  # real steps only: the padding after each sequence's end is not data
        x = x[np.arange(train.window)[None, :] < train.lengths[:, None]]  # (sum of lengths, F)
    x = x.reshape(-1, train.features)  # (N*T, F)
    x_mean, x_std = x.mean(axis=0), _floored(x.std(axis=0))
    if train.head == "classification":
        return Normalization(_floats(x_mean), _floats(x_std))
    y = train.y.astype(np.float64)  # (N, O)
    return Normalization(_floats(x_mean), _floats(x_std), _floats(y.mean(axis=0)), _floats(_floored(y.std(axis=0))))


def normalize_x(x: np.ndarray, norm: Normalization) -> np.ndarray:
    """``(x - x_mean) / x_std`` over the last axis (features), as float32."""
    mean, std = _stats(norm.x_mean, norm.x_std, np.asarray(x), "input", "features")
    return ((np.asarray(x, dtype=np.float32) - mean) / std).astype(np.float32)


def normalize_y(y: np.ndarray, norm: Normalization) -> np.ndarray:
    """Targets in the model's units; unchanged when the normalisation has no y statistics."""
    if not norm.y_mean:
        return np.asarray(y)
    mean, std = _stats(norm.y_mean, norm.y_std, np.asarray(y), "target", "outputs")
    return ((np.asarray(y, dtype=np.float32) - mean) / std).astype(np.float32)


def denormalize_y(y: np.ndarray, norm: Normalization) -> np.ndarray:
    """Model outputs back in the data's units; unchanged when the normalisation has no y statistics."""
    if not norm.y_mean:
        return np.asarray(y)
    mean, std = _stats(norm.y_mean, norm.y_std, np.asarray(y), "output", "outputs")
    return (np.asarray(y, dtype=np.float32) * std + mean).astype(np.float32)


def _stats(mean: tuple[float, ...], std: tuple[float, ...], array: np.ndarray, what: str, axis_name: str):
    if array.ndim == 0 or array.shape[-1] != len(mean):
        raise BadInputError(
            f"expected {what} with {len(mean)} {axis_name} on the last axis, got shape {array.shape}"
        )
    return np.asarray(mean, dtype=np.float32), np.asarray(std, dtype=np.float32)


def _floored(std: np.ndarray) -> np.ndarray:
    return np.where(std < MIN_STD, 1.0, std)


def _floats(values: np.ndarray) -> tuple[float, ...]:
    return tuple(float(v) for v in values)
