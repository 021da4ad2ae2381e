"""Where a model's data came from, recorded in its checkpoint so the same split can be rebuilt.

A user file is recorded by its absolute path, its size and its sha256: a later ``evaluate`` from
another folder finds it, and a file that moved or changed since training is named as such instead
of silently giving another split. ``test_path`` is an official test file (a UCR/UEA ``_TEST``
file, a held-out period): it is never used for training, early stopping or normalisation, and the
training file is then split into train and validation only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from edgernn.bundle import sha256_of
from edgernn.errors import BadInputError


@dataclass(frozen=True)
class DataSource:
    """A built-in task (``task``) or a user file (``path``), and how it is windowed and split."""

    task: str | None = None
    path: str | None = None
    head: str | None = None
    window: int | None = None
    horizon: int = 1
    stride: int = 1
    n: int | None = None
    seed: int = 0
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    mmap: bool = False  # .npy/.npz memory-mapped, windows cut per batch (edgernn.data.lazy)
    test_path: str | None = None  # official test file: scored on, never trained or tuned on
    sha256: str | None = None  # of ``path``, recorded when the source is made
    size: int | None = None
    test_sha256: str | None = None
    test_size: int | None = None
    season: int | None = None  # steps per season for the seasonal-naive baseline (default: from the file's dates)
    forecast_target: str = "value"  # forecasting transforms (edgernn.transforms), kept in the model spec
    log: bool = False
    window_scale: bool = False

    def __post_init__(self) -> None:
        if (self.task is None) == (self.path is None):
            raise BadInputError("give either a built-in task or a data file, not both and not neither")
        if self.mmap and self.task:
            raise BadInputError("--mmap reads a .npy or .npz file memory-mapped; built-in tasks are made in memory")
        if self.mmap and self.test_path is not None:
            raise BadInputError("--mmap does not take --test-data yet: split the memory-mapped file itself "
                                "(--val-fraction) or drop --mmap")
        if self.test_path is not None and self.task is not None:
            raise BadInputError("--test-data goes with --data FILE, not with a built-in --task")
        if self.test_path is not None:
            object.__setattr__(self, "test_fraction", 0.0)
        for key in ("path", "test_path"):
            prefix = "test_" if key == "test_path" else ""
            value = getattr(self, key)
            if value is None or getattr(self, prefix + "sha256") is not None:
                continue  # a built-in task, or a recorded source: checked when loaded
            p = Path(value)
            if p.is_file():  # a new source: record where it is and what it holds
                object.__setattr__(self, key, str(p.resolve()))
                object.__setattr__(self, prefix + "sha256", sha256_of(p))
                object.__setattr__(self, prefix + "size", p.stat().st_size)

    @property
    def transform(self):
        """The forecast transform asked for, or None."""
        from edgernn.transforms import ForecastTransform

        t = ForecastTransform(target=self.forecast_target, log=self.log, window_scale=self.window_scale)
        return t if t.active else None

    @property
    def label(self) -> str:
        return self.task if self.task else Path(self.path).name

    def _checked(self, key: str) -> str:
        """The recorded file's path, after checking it is still there and unchanged."""
        prefix = "test_" if key == "test_path" else ""
        path, digest, size = getattr(self, key), getattr(self, prefix + "sha256"), getattr(self, prefix + "size")
        what = "test data" if prefix else "training data"
        p = Path(path)
        if digest is None:
            return path  # not recorded (an older checkpoint): read as given
        if not p.is_file():
            raise BadInputError(f"the {what} {path} is not there any more (moved or deleted since training); "
                                "put it back, or pass --data FILE")
        if p.stat().st_size != size or sha256_of(p) != digest:
            raise BadInputError(f"the {what} {path} changed since training (sha256 {digest[:12]}…, size {size} "
                                "recorded); the same split cannot be rebuilt: restore it, or pass --data FILE")
        return path

    def load(self):
        from edgernn import data

        if self.task:
            if self.task not in data.BUILTIN_TASKS:
                raise BadInputError(
                    f"unknown task {self.task!r}; built-in tasks: {', '.join(data.BUILTIN_TASKS)}"
                )
            return data.make_builtin(self.task, seed=self.seed, n=self.n, window=self.window)
        return data.load_data(self._checked("path"), head=self.head, window=self.window, horizon=self.horizon,
                              stride=self.stride)

    def load_test(self, train):
        """The official test file, read like the training file: its head and window; classes through its labels."""
        from edgernn import data

        window = train.window if train.head == "forecast" else None
        return data.load_data(self._checked("test_path"), head=train.head, window=window, horizon=self.horizon,
                              stride=self.stride, labels=train.labels if train.head == "classification" else None)

    def splits(self):
        from edgernn import data
        from edgernn.data.datasets import Splits, check_classification_set, check_test_classes

        if self.mmap:
            from edgernn.data.lazy import lazy_splits

            return lazy_splits(self.path, head=self.head, window=self.window, horizon=self.horizon, stride=self.stride,
                               val_fraction=self.val_fraction, test_fraction=self.test_fraction, seed=self.seed)
        full = self.load()
        check_classification_set(full)
        parts = data.split(full, val_fraction=self.val_fraction, test_fraction=self.test_fraction, seed=self.seed)
        if self.test_path is not None:
            test = self.load_test(full)
            parts = Splits(parts.train, parts.val, test)
        check_test_classes(parts.train, parts.test)
        return parts

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DataSource":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})
