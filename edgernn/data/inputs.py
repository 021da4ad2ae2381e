"""Reading the windows to predict on (``edgernn run --input``) as (N, T, F) float32.

``read_model_inputs(path, spec)`` reads a file the way the model's training file was read (the
spec's ``data_layout``), so ``run`` never guesses differently from ``train``:

- a model trained on one-case-per-row files (``cases``: target in the first column) reads
  ``.csv``/``.tsv`` and 2-D ``.npy`` inputs in that layout, the target column dropped; a row of
  another width is refused;
- a model trained on a series (``series``/``series-dated``) reads ``.csv``/``.tsv`` and 1-D/2-D
  ``.npy`` inputs as a series (3-D ``.npy`` are windows) (rows are time steps; a leading date column as in training) and
  predicts every window of the model's length in it;
- ``.ts`` files (labelled or not) are read by the training reader, variable length included;
- ``.npz`` with ``x`` and ``lengths`` holds variable-length sequences padded at the end.

Every other case is the generic reading below.

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
from edgernn.data.readers import read_series
from edgernn.data.ts_format import read_ts
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


def read_model_inputs(path: str | Path, spec) -> tuple[np.ndarray, np.ndarray | None]:
    """Inputs for ``spec``'s model from ``path``, read as its training file was: windows (N, T, F) float32 and,
    for variable-length sequences padded at the end, their lengths (N,) (else None)."""
    p = require_file(path, extensions=INPUT_EXTENSIONS + (".ts",))
    source, suffix, layout = str(path), p.suffix.lower(), spec.data_layout
    if suffix == ".ts":
        cases = read_ts(p, source, unlabelled_ok=True)
        return _checked_features(cases.x, spec, source), cases.lengths
    if layout in ("series", "series-dated") and (suffix in (".csv", ".tsv") or (suffix == ".npy" and _ndim(p, source) < 3)):
        return _series_windows(p, source, spec), None
    if layout == "cases" and (suffix in (".csv", ".tsv") or (suffix == ".npy" and _ndim(p, source) == 2)):
        return _cases_inputs(p, source, spec), None
    if suffix == ".npz":
        with load_numpy(p, source) as archive:
            if "lengths" in archive.files:
                x = _array_inputs(_load_array(p, source), source, spec.input_size, None)
                lengths = np.asarray(archive["lengths"]).reshape(-1)
                if lengths.shape != (len(x),) or lengths.dtype.kind not in "iu" or lengths.min() < 1 \
                        or lengths.max() > x.shape[1]:
                    raise BadInputError(f"{source}: expected 'lengths' as {len(x)} integers in 1..{x.shape[1]}, "
                                        f"got shape {lengths.shape} dtype {lengths.dtype}")
                return x, lengths.astype(np.int64)
    return load_inputs(p, input_size=spec.input_size), None


def _ndim(p: Path, source: str) -> int:
    return np.asarray(load_numpy(p, source)).ndim


def _checked_features(x: np.ndarray, spec, source: str) -> np.ndarray:
    if x.shape[2] != spec.input_size:
        raise BadInputError(f"{source}: expected {spec.input_size} dimensions per case, got {x.shape[2]}")
    return np.ascontiguousarray(x, dtype=np.float32)


def _cases_inputs(p: Path, source: str, spec) -> np.ndarray:
    """One case per row, target first, as the model's training file: the target column is dropped."""
    expected = f"a target and {spec.window} steps per row, as the model's training file"
    if p.suffix.lower() == ".npy":
        values = require_numeric(np.asarray(load_numpy(p, source)), source, "inputs")
        if values.shape[1] != 1 + spec.window:
            raise BadInputError(f"{source}: expected {expected} (shape (N, {1 + spec.window})), got {values.shape}; "
                                "for windows without a target column save (N, T, F) arrays")
        require_finite(values[:, 1:], source, "inputs")
        return values[:, 1:, None].astype(np.float32)  # (N, T, 1)
    table = read_table(p, source)
    table.require_width(1 + spec.window, expected + "; for windows without a target column save a .npy (N, T, F)")
    return table.numbers(first_column=1)[:, :, None].astype(np.float32)  # (N, T, 1)


def _series_windows(p: Path, source: str, spec) -> np.ndarray:
    """A series read like the model's training series; every window of ``spec.window`` steps in it."""
    values = read_series(p, source)  # (L, F)
    if values.shape[1] != spec.input_size:
        raise BadInputError(f"{source}: expected a series with {spec.input_size} features (columns), as the model's "
                            f"training file, got {values.shape[1]}")
    if len(values) < spec.window:
        raise BadInputError(f"{source}: expected at least {spec.window} time steps (the model's window), got {len(values)}")
    starts = np.arange(len(values) - spec.window + 1)
    x = values[starts[:, None] + np.arange(spec.window)[None, :]]  # (N, T, F)
    return x.astype(np.float32)
