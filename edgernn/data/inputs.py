"""Reading the windows to predict on (``edgernn run --input``) as (N, T, F) float32.

- ``.npy``: (N, T, F); (T, F) is one window; (N, T) holds N univariate windows when
  ``input_size`` is 1 (a (T, 1) array with ``window`` not 1 is read as one window instead).
  A 1-D (T,) array is one univariate window.
- ``.npz``: the array ``x``, read as a ``.npy``.
- ``.csv`` / ``.tsv``: one window per row, flattened time-major (t0f0, t0f1, ..., t1f0, ...);
  the row length must be a multiple of ``input_size``, the same on every row, and equal to
  ``window * input_size`` when ``window`` is given. A header row is optional.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgernn.data.checks import load_numpy, require_file, require_finite, require_numeric, require_positive_int
from edgernn.data.delimited import read_table
from edgernn.errors import BadInputError

INPUT_EXTENSIONS = (".npy", ".npz", ".csv", ".tsv")


def load_inputs(path: str | Path, *, input_size: int, window: int | None = None) -> np.ndarray:
    require_positive_int(input_size, "input_size")
    require_positive_int(window, "window", allow_none=True)
    p = require_file(path, extensions=INPUT_EXTENSIONS)
    source = str(path)
    if p.suffix.lower() in (".csv", ".tsv"):
        return _csv_inputs(p, source, input_size, window)
    return _array_inputs(_load_array(p, source), source, input_size, window)


def _expected(input_size: int, window: int | None) -> str:
    return f"(N, {window if window else 'T'}, {input_size})"


def _load_array(p: Path, source: str) -> np.ndarray:
    loaded = load_numpy(p, source)
    if isinstance(loaded, np.ndarray):
        return loaded
    with loaded as archive:
        if "x" not in archive.files:
            raise BadInputError(f"{source}: expected an array named 'x', got {sorted(archive.files)}")
        return archive["x"]


def _array_inputs(array: np.ndarray, source: str, input_size: int, window: int | None) -> np.ndarray:
    x = require_numeric(array, source, "inputs")
    require_finite(x, source, "inputs")  # index reported in the file's own shape
    if x.ndim == 1 and input_size == 1:
        x = x[None, :, None]  # one univariate window, (1, T, 1)
    elif x.ndim == 2 and input_size == 1 and not (x.shape[1] == 1 and window != 1):
        x = x[:, :, None]  # N univariate windows, (N, T, 1)
    elif x.ndim == 2:
        x = x[None]  # one window, (1, T, F)
    if x.ndim != 3 or x.shape[2] != input_size or (window is not None and x.shape[1] != window):
        raise BadInputError(f"{source}: expected input of shape {_expected(input_size, window)}, got {array.shape}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise BadInputError(f"{source}: expected at least one window of at least one step, got {array.shape}")
    return np.ascontiguousarray(x, dtype=np.float32)


def _csv_inputs(p: Path, source: str, input_size: int, window: int | None) -> np.ndarray:
    table = read_table(p, source)
    width = len(table.rows[0])
    if window is not None:
        feature_word = "feature" if input_size == 1 else "features"
        table.require_width(window * input_size, f"window {window} × {input_size} {feature_word}")
    else:
        if width % input_size:
            raise BadInputError(
                f"{source}: expected a multiple of {input_size} values per row (steps × {input_size} features, "
                f"time-major), got {width} on line {table.lines[0]}"
            )
        table.require_width(width, f"as on line {table.lines[0]}")
    values = table.numbers()  # (N, T*F), checked finite
    return values.reshape(len(values), -1, input_size).astype(np.float32)  # (N, T, F), time-major rows
