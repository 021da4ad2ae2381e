"""The in-memory dataset every stage trains and evaluates on, and its train/val/test split.

A ``Dataset`` holds windows ``x`` of shape (N, T, F), float32, and targets ``y``: class indices
(N,) int64 for classification, values (N, O) float32 for regression and forecasting. It checks
its own shapes, dtypes and finiteness when built, so every later stage can trust it.

``split`` shuffles classification and regression data with a seed (stratified by class for
classification) and cuts forecast data chronologically, leaving a gap of ``window`` windows
between train, val and test so that no val/test window shares a series value with a train window
(exact for stride 1 and horizon 1; with a horizon h > 1 the last train targets may fall inside
the first val window's inputs, h - 1 steps of overlap, which we accept).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgernn.errors import BadInputError
from edgernn.spec import HEADS

MIN_SPLIT_SAMPLES = 10


@dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """Windows and targets for one task; see the module docstring for shapes."""

    x: np.ndarray = field(repr=False)
    y: np.ndarray = field(repr=False)
    head: str
    labels: tuple[str, ...] = ()
    name: str = ""
    notes: tuple[str, ...] = ()
    layout: str = ""  # how the source file was laid out (readers.LAYOUTS); "" for built-in data
    lengths: np.ndarray | None = field(default=None, repr=False)  # (N,) true lengths when right-padded
    season: int | None = None  # steps per season when the file says (monthly dates: 12)

    def __post_init__(self) -> None:
        who = self.name or "dataset"
        if self.head not in HEADS:
            raise BadInputError(f"{who}: head must be one of {', '.join(HEADS)}, got {self.head!r}")
        x = np.asarray(self.x)
        if x.ndim != 3:
            raise BadInputError(f"{who}: expected x of shape (N, T, F), got {x.shape}")
        if not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_):
            raise BadInputError(f"{who}: expected numeric x, got dtype {x.dtype}")
        x = np.ascontiguousarray(x, dtype=np.float32)
        y = self._checked_targets(np.asarray(self.y), len(x), who)
        for array, what in ((x, "x"), (y, "y")):
            if array.dtype.kind == "f" and not np.isfinite(array).all():
                index = tuple(int(i) for i in np.argwhere(~np.isfinite(array))[0])
                raise BadInputError(
                    f"{who}: expected finite {what}, got {array[index]} at index {index}; "
                    "fill or drop missing values first"
                )
        object.__setattr__(self, "x", x)
        object.__setattr__(self, "y", y)
        object.__setattr__(self, "labels", tuple(str(label) for label in self.labels))
        object.__setattr__(self, "notes", tuple(str(note) for note in self.notes))
        if self.lengths is not None:
            lengths = np.asarray(self.lengths)
            if lengths.shape != (len(x),) or (len(x) and (lengths.min() < 1 or lengths.max() > x.shape[1])):
                raise BadInputError(f"{who}: expected {len(x)} lengths in 1..{x.shape[1]}, got shape {lengths.shape}")
            object.__setattr__(self, "lengths", lengths.astype(np.int64))

    def _checked_targets(self, y: np.ndarray, n: int, who: str) -> np.ndarray:
        if len(y) != n:
            raise BadInputError(f"{who}: expected {n} targets (one per window), got {len(y)}")
        if self.head == "classification":
            if y.ndim != 1 or not (np.issubdtype(y.dtype, np.integer) or y.dtype == np.bool_):
                raise BadInputError(
                    f"{who}: expected class indices of shape (N,) and integer dtype, "
                    f"got shape {y.shape} dtype {y.dtype}"
                )
            y = y.astype(np.int64)
            top = len(self.labels) if self.labels else None
            if n and (y.min() < 0 or (top is not None and y.max() >= top)):
                raise BadInputError(
                    f"{who}: expected class indices in 0..{(top or 1) - 1}, "
                    f"got values {int(y.min())}..{int(y.max())}"
                )
            return y
        if y.ndim == 1:
            y = y[:, None]  # (N, 1)
        if y.ndim != 2 or not np.issubdtype(y.dtype, np.number):
            raise BadInputError(
                f"{who}: expected numeric {self.head} targets of shape (N, O), got shape {y.shape} dtype {y.dtype}"
            )
        return np.ascontiguousarray(y, dtype=np.float32)

    @property
    def n(self) -> int:
        return int(self.x.shape[0])

    @property
    def window(self) -> int:
        return int(self.x.shape[1])

    @property
    def features(self) -> int:
        return int(self.x.shape[2])

    @property
    def output_size(self) -> int:
        """Outputs of the head: the number of classes for classification, else O."""
        if self.head != "classification":
            return int(self.y.shape[1])
        if self.labels:
            return len(self.labels)
        return int(self.y.max()) + 1 if self.n else 0

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, head={self.head!r}, x={self.x.shape}, y={self.y.shape}, "
            f"labels={self.labels!r}, notes={self.notes!r})"
        )


@dataclass(frozen=True)
class Splits:
    train: Dataset
    val: Dataset
    test: Dataset


def split(ds: Dataset, *, val_fraction: float = 0.15, test_fraction: float = 0.15, seed: int = 0) -> Splits:
    """Cut ``ds`` into train, val and test; see the module docstring for the rules."""
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= value < 1.0:
            raise BadInputError(f"{name} must be in [0, 1), got {value}")
    if val_fraction + test_fraction >= 1.0:
        raise BadInputError(
            f"val_fraction + test_fraction must leave data to train on, got {val_fraction} + {test_fraction}"
        )
    who = ds.name or "dataset"
    if ds.n < MIN_SPLIT_SAMPLES:
        raise BadInputError(
            f"{who}: expected at least {MIN_SPLIT_SAMPLES} samples to split into train/val/test, "
            f"got {ds.n}; use more data"
        )
    if ds.head == "forecast":
        return _split_chronological(ds, val_fraction, test_fraction)

    n_val, n_test = _split_sizes(ds.n, val_fraction, test_fraction, who)
    rng = np.random.default_rng(seed)
    order = _stratified_order(ds.y, rng) if ds.head == "classification" else rng.permutation(ds.n)
    test_idx = np.sort(order[:n_test])
    val_idx = np.sort(order[n_test : n_test + n_val])
    train_idx = np.sort(order[n_test + n_val :])
    return Splits(_take(ds, train_idx, "train"), _take(ds, val_idx, "val"), _take(ds, test_idx, "test"))


def _split_sizes(n: int, val_fraction: float, test_fraction: float, who: str) -> tuple[int, int]:
    """Rounded val and test sizes, at least one sample each when the fraction is non-zero."""
    n_val = max(1, round(n * val_fraction)) if val_fraction > 0 else 0
    n_test = max(1, round(n * test_fraction)) if test_fraction > 0 else 0
    if n - n_val - n_test < 1:
        raise BadInputError(f"{who}: {n} samples leave none to train on after val {n_val} and test {n_test}")
    return n_val, n_test


def _stratified_order(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random order in which every prefix holds each class in about its overall proportion.

    Each sample gets its class-relative rank ``(rank + 0.5) / class_count`` in a random order;
    sorting by that rank deals the classes out evenly, so taking the first ``n_test`` samples
    is a stratified sample.
    """
    perm = rng.permutation(len(y))
    y_perm = y[perm]
    counts = np.bincount(y_perm)
    by_class = np.argsort(y_perm, kind="stable")
    class_start = np.cumsum(counts) - counts
    rank = np.empty(len(y), dtype=np.float64)
    rank[by_class] = np.arange(len(y)) - class_start[y_perm[by_class]]
    fraction = (rank + 0.5) / counts[y_perm]
    return perm[np.argsort(fraction, kind="stable")]


def _split_chronological(ds: Dataset, val_fraction: float, test_fraction: float) -> Splits:
    who = ds.name or "dataset"
    gap = ds.window
    gaps = gap * ((val_fraction > 0) + (test_fraction > 0))
    usable = ds.n - gaps
    if usable < MIN_SPLIT_SAMPLES:
        raise BadInputError(
            f"{who}: expected at least {MIN_SPLIT_SAMPLES + gaps} windows to split chronologically "
            f"with gaps of {gap} windows between splits, got {ds.n}; use a longer series or a smaller window"
        )
    n_val, n_test = _split_sizes(usable, val_fraction, test_fraction, who)
    n_train = usable - n_val - n_test
    val_start = n_train + (gap if n_val else 0)
    test_start = val_start + n_val + (gap if n_test else 0)
    note = f"split chronologically (train, val, test) with gaps of {gap} windows between them"
    return Splits(
        _take(ds, np.arange(0, n_train), "train", extra_note=note),
        _take(ds, np.arange(val_start, val_start + n_val), "val"),
        _take(ds, np.arange(test_start, test_start + n_test), "test"),
    )


def _take(ds: Dataset, index: np.ndarray, part: str, extra_note: str | None = None) -> Dataset:
    notes = ds.notes + ((extra_note,) if extra_note else ())
    name = f"{ds.name}/{part}" if ds.name else part
    lengths = None if ds.lengths is None else ds.lengths[index]
    return Dataset(ds.x[index], ds.y[index], ds.head, labels=ds.labels, name=name, notes=notes, layout=ds.layout,
                   lengths=lengths, season=ds.season)


FORECAST_HINT = "if each row is a time step of one series, pass --head forecast"


def check_classification_set(ds: Dataset) -> None:
    """Refuse what cannot be a classification set: one step per case, or a class with fewer than 2 cases."""
    if ds.head != "classification":
        return
    who = ds.name or "dataset"
    if ds.window == 1:
        raise BadInputError(
            f"{who}: each case is a single step, which is not a sequence to classify; {FORECAST_HINT}"
        )
    counts = np.bincount(ds.y, minlength=len(ds.labels) or int(ds.y.max()) + 1)
    names = ds.labels or tuple(str(k) for k in range(len(counts)))
    rare = [k for k, c in enumerate(counts) if c < 2]
    if rare:
        k = rare[0]
        raise BadInputError(
            f"{who}: class {names[k]!r} has {int(counts[k])} training case(s) ({len(rare)} of {len(counts)} classes "
            f"have fewer than 2); a classifier needs at least 2 cases of every class: {FORECAST_HINT}, "
            "otherwise merge or drop the rare classes"
        )


def check_test_classes(train: Dataset, test: Dataset) -> None:
    """Refuse a test set holding a class the training set has no case of."""
    if train.head != "classification" or test.n == 0:
        return
    seen = set(np.unique(train.y).tolist())
    unseen = sorted(set(np.unique(test.y).tolist()) - seen)
    if unseen:
        names = test.labels or tuple(str(k) for k in range(int(test.y.max()) + 1))
        raise BadInputError(
            f"{test.name or 'test'}: holds class {names[unseen[0]]!r} that training has no case of "
            f"({len(unseen)} such classes); use more data per class, or pass the official split with --test-data"
        )
