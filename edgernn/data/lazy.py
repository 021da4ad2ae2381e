"""Data larger than memory: ``edgernn train --mmap`` on ``.npy``/``.npz`` files.

The file is memory-mapped (see ``lazy_arrays``); windows are cut when a batch asks for them, so
memory holds a batch, not the data set. The splits are the same windows ``split`` makes from the
in-memory ``Dataset`` (same rules, same seed, same notes), and the normalisation is the same
figure ``fit_normalization`` gives, computed in one streaming pass over the file in chunks: a
forecasting series step counts once for every training window that covers it, exactly as when
every window's steps are averaged. That pass also checks every value is finite.

What stays in memory: class targets (8 bytes per sequence), the split indices, one chunk, and for
the test metrics the test split's targets and predictions (outputs per window, not T × F).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgernn.data.checks import require_file, require_finite, require_numeric, require_positive_int
from edgernn.data.datasets import MIN_SPLIT_SAMPLES, Splits, _split_sizes, _stratified_order
from edgernn.data.lazy_arrays import LazyWindows, npz_members, open_npy, open_npz_member
from edgernn.data.normalize import MIN_STD
from edgernn.data.labels import encode_labels
from edgernn.data.readers import DEFAULT_FORECAST_WINDOW, PASS_HEAD
from edgernn.errors import BadInputError
from edgernn.spec import Normalization

CHUNK_VALUES = 1 << 18  # values per chunk of the statistics pass (2 MiB in float64; ~10 temporaries of that size)


@dataclass(frozen=True, eq=False)
class LazyDataset:
    """Like ``Dataset``, but ``x`` is ``LazyWindows`` and a forecast's ``y`` a mapped view."""

    x: LazyWindows = field(repr=False)
    y: np.ndarray = field(repr=False)
    head: str
    labels: tuple[str, ...] = ()
    name: str = ""
    notes: tuple[str, ...] = ()

    @property
    def n(self) -> int:
        return len(self.x)

    @property
    def window(self) -> int:
        return self.x.shape[1]

    @property
    def features(self) -> int:
        return self.x.shape[2]

    @property
    def output_size(self) -> int:
        if self.head != "classification":
            return int(self.y.shape[1])
        return len(self.labels) if self.labels else int(self.y.max()) + 1


@dataclass
class _Moments:
    """Weighted mean and sum of squared deviations, merged chunk by chunk (Chan et al.)."""

    weight: float = 0.0
    mean: np.ndarray | None = None
    m2: np.ndarray | None = None

    def add(self, values: np.ndarray, weights: np.ndarray) -> None:
        w = weights.astype(np.float64)
        total = float(w.sum())
        if total == 0.0:
            return
        mean = (w[:, None] * values).sum(axis=0) / total  # (F,)
        m2 = (w[:, None] * (values - mean) ** 2).sum(axis=0)
        if self.mean is None:
            self.weight, self.mean, self.m2 = total, mean, m2
            return
        delta, merged = mean - self.mean, self.weight + total
        self.mean = self.mean + delta * total / merged
        self.m2 = self.m2 + m2 + delta**2 * self.weight * total / merged
        self.weight = merged

    def stats(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        std = np.sqrt(self.m2 / self.weight)
        return tuple(map(float, self.mean)), tuple(float(s) if s >= MIN_STD else 1.0 for s in std)


@dataclass(frozen=True)
class LazySplits(Splits):
    normalization: Normalization | None = None


def lazy_splits(path: str | Path, *, head: str | None = None, window: int | None = None, horizon: int = 1,
                stride: int = 1, val_fraction: float = 0.15, test_fraction: float = 0.15, seed: int = 0) -> LazySplits:
    """The train/val/test splits of a mapped ``.npy``/``.npz`` file and their normalisation, in one pass."""
    require_positive_int(window, "window", allow_none=True)
    require_positive_int(horizon, "horizon")
    require_positive_int(stride, "stride")
    p = require_file(path, extensions=(".npy", ".npz"))
    source = str(path)
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= value < 1.0:
            raise BadInputError(f"{name} must be in [0, 1), got {value}")
    if val_fraction + test_fraction >= 1.0:
        raise BadInputError(f"val_fraction + test_fraction must leave data to train on, got {val_fraction} + {test_fraction}")
    if p.suffix.lower() == ".npy":
        array = open_npy(p, source)
        if head is None and array.ndim == 1:
            head = "forecast"
        if head == "forecast":
            return _series_splits(array, window, horizon, stride, val_fraction, test_fraction, source, p.stem)
        if head is None:
            raise BadInputError(f"{source}: cannot tell whether an array of shape {array.shape} is a series or "
                                f"labelled rows; {PASS_HEAD}")
        if array.ndim != 2 or array.shape[1] < 2 or array.shape[0] == 0:
            raise BadInputError(f"{source}: expected an array of shape (N, 1 + T) with the target in column 0, "
                                f"got {array.shape}; for multivariate sequences save x and y in a .npz")
        return _case_splits(array[:, 1:], np.asarray(array[:, 0]), head, (), (), window, val_fraction,
                            test_fraction, seed, source, p.stem)
    if head == "forecast":
        raise BadInputError(f"{source}: a .npz holds labelled sequences; to forecast give the series as .csv or .npy")
    members = npz_members(p, source)
    if "x" not in members or "y" not in members:
        raise BadInputError(f"{source}: expected arrays 'x' and 'y', got {sorted(members)}")
    x, note = open_npz_member(p, "x", source)
    small = np.load(p, allow_pickle=False)
    y = small["y"]
    names = tuple(str(v) for v in small["labels"]) if "labels" in members else ()
    notes = (note,) if note else ()
    if x.ndim not in (2, 3) or x.shape[0] == 0:
        raise BadInputError(f"{source}: expected x of shape (N, T) or (N, T, F), got {x.shape}")
    if y.ndim not in (1, 2) or len(y) != len(x):
        raise BadInputError(f"{source}: expected y of shape ({len(x)},) or ({len(x)}, O), got {y.shape}")
    if head is None:
        head = "regression" if y.dtype.kind == "f" else "classification"
        notes += (f"inferred --head {head} from the {y.dtype} dtype of y",)
    return _case_splits(x, y, head, names, notes, window, val_fraction, test_fraction, seed, source, p.stem)


def _case_splits(x, y_raw, head, names, notes, window, val_fraction, test_fraction, seed, source, name) -> LazySplits:
    n, steps = x.shape[0], x.shape[1]
    if window is not None and window != steps:
        raise BadInputError(f"{source}: sequences have {steps} steps, got --window {window}; "
                            "omit --window for files holding one sequence per case")
    if head == "classification":
        if names:
            if y_raw.ndim != 1 or y_raw.dtype.kind not in "iu" or y_raw.min() < 0 or y_raw.max() >= len(names):
                raise BadInputError(f"{source}: with 'labels' given, expected integer y in 0..{len(names) - 1}, "
                                    f"got dtype {y_raw.dtype}")
            y, labels = y_raw.astype(np.int64), names
        else:
            if y_raw.ndim != 1:
                raise BadInputError(f"{source}: expected class labels y of shape ({n},), got {y_raw.shape}")
            y, labels = encode_labels(y_raw, source)
    else:
        y = require_numeric(np.asarray(y_raw), source, "y").reshape(n, -1)
        require_finite(y, source, "y")
        y = y.astype(np.float32)  # as Dataset holds it
        labels = ()
    if n < MIN_SPLIT_SAMPLES:
        raise BadInputError(f"{name}: expected at least {MIN_SPLIT_SAMPLES} samples to split into train/val/test, "
                            f"got {n}; use more data")
    n_val, n_test = _split_sizes(n, val_fraction, test_fraction, name)
    rng = np.random.default_rng(seed)
    order = _stratified_order(y, rng) if head == "classification" else rng.permutation(n)
    parts = {"test": np.sort(order[:n_test]), "val": np.sort(order[n_test : n_test + n_val]),
             "train": np.sort(order[n_test + n_val :])}
    in_train = np.zeros(n, bool)
    in_train[parts["train"]] = True
    x_moments = _Moments()
    rows_per_chunk = max(1, CHUNK_VALUES // max(1, int(np.prod(x.shape[1:]))))
    for start in range(0, n, rows_per_chunk):
        chunk = np.asarray(x[start : start + rows_per_chunk], np.float32).astype(np.float64)  # as Dataset holds it
        _require_finite_chunk(chunk, start, source, "x")
        rows = chunk[in_train[start : start + rows_per_chunk]].reshape(-1, 1 if x.ndim == 2 else x.shape[2])
        x_moments.add(rows, np.ones(len(rows)))
    x_mean, x_std = x_moments.stats()
    if head == "classification":
        norm = Normalization(x_mean, x_std)
    else:
        y_train = y[parts["train"]].astype(np.float64)
        y_std = np.where(y_train.std(axis=0) < MIN_STD, 1.0, y_train.std(axis=0))
        norm = Normalization(x_mean, x_std, tuple(map(float, y_train.mean(axis=0))), tuple(map(float, y_std)))

    def part(key: str) -> LazyDataset:
        index = parts[key]
        return LazyDataset(LazyWindows(x, window=steps, rows=index), y[index], head, labels, f"{name}/{key}", notes)

    return LazySplits(part("train"), part("val"), part("test"), normalization=norm)


def _series_splits(series, window, horizon, stride, val_fraction, test_fraction, source, name) -> LazySplits:
    if series.ndim not in (1, 2) or series.shape[0] == 0:
        raise BadInputError(f"{source}: expected a series of shape (T,) or (T, F) to forecast, got {series.shape}")
    notes: tuple[str, ...] = ()
    if window is None:
        window = DEFAULT_FORECAST_WINDOW
        notes += (f"no window given; using windows of {window} steps (pass --window to change)",)
    length, span = series.shape[0], window + horizon
    if length < span:
        raise BadInputError(f"{source}: series has {length} steps, fewer than window {window} + horizon {horizon}; "
                            "pass a smaller --window or use a longer series")
    n = (length - span) // stride + 1  # windows, as make_windows cuts them
    gaps = window * ((val_fraction > 0) + (test_fraction > 0))
    usable = n - gaps
    if usable < MIN_SPLIT_SAMPLES:
        raise BadInputError(f"{name}: expected at least {MIN_SPLIT_SAMPLES + gaps} windows to split chronologically "
                            f"with gaps of {window} windows between splits, got {n}; use a longer series or a "
                            "smaller window")
    n_val, n_test = _split_sizes(usable, val_fraction, test_fraction, name)
    n_train = usable - n_val - n_test
    val_start = n_train + (window if n_val else 0)
    test_start = val_start + n_val + (window if n_test else 0)
    split_note = f"split chronologically (train, val, test) with gaps of {window} windows between them"
    norm = _series_normalization(series, window, horizon, stride, n_train, source)
    matrix = series if series.ndim == 2 else series.reshape(-1, 1)  # a view: (L, F)
    targets = matrix[window - 1 + horizon :: stride]  # target of window i is row i (a mapped view)

    def part(key: str, first: int, count: int, extra: tuple[str, ...] = ()) -> LazyDataset:
        x = LazyWindows(series, window=window, stride=stride, first=first, count=count)
        return LazyDataset(x, targets[first : first + count], "forecast", (), f"{name}/{key}", notes + extra)

    return LazySplits(part("train", 0, n_train, (split_note,)), part("val", val_start, n_val),
                      part("test", test_start, n_test), normalization=norm)


def _series_normalization(series, window, horizon, stride, n_train, source) -> Normalization:
    """Every training window's steps (x) and targets (y), weighted, in one pass over the series."""
    x_moments, y_moments = _Moments(), _Moments()
    features = 1 if series.ndim == 1 else series.shape[1]
    rows = max(1, CHUNK_VALUES // features)
    lead = window - 1 + horizon  # window i's target is series step i * stride + lead
    for start in range(0, series.shape[0], rows):
        chunk = np.asarray(series[start : start + rows], np.float32).astype(np.float64).reshape(-1, features)
        _require_finite_chunk(chunk, start, source, "values")
        s = np.arange(start, start + len(chunk))  # series steps of this chunk
        first = np.maximum(0, -((window - 1 - s) // stride))  # first window covering step s
        last = np.minimum(n_train - 1, s // stride)  # last one
        x_moments.add(chunk, np.maximum(0, last - first + 1))
        offset = s - lead
        y_moments.add(chunk, (offset >= 0) & (offset % stride == 0) & (offset // stride < n_train))
    x_mean, x_std = x_moments.stats()
    y_mean, y_std = y_moments.stats()
    return Normalization(x_mean, x_std, y_mean, y_std)


def _require_finite_chunk(chunk: np.ndarray, start: int, source: str, what: str) -> None:
    if not np.isfinite(chunk).all():
        index = tuple(int(i) for i in np.argwhere(~np.isfinite(chunk))[0])
        index = (index[0] + start, *index[1:])
        raise BadInputError(f"{source}: expected finite {what}, got a NaN or inf at index {index}; "
                            "fill or drop missing values first")
