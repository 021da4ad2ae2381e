"""Where a model's data came from, recorded in its checkpoint so the same split can be rebuilt."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

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

    def __post_init__(self) -> None:
        if (self.task is None) == (self.path is None):
            raise BadInputError("give either a built-in task or a data file, not both and not neither")
        if self.mmap and self.task:
            raise BadInputError("--mmap reads a .npy or .npz file memory-mapped; built-in tasks are made in memory")

    @property
    def label(self) -> str:
        return self.task if self.task else Path(self.path).name

    def load(self):
        from edgernn import data

        if self.task:
            if self.task not in data.BUILTIN_TASKS:
                raise BadInputError(
                    f"unknown task {self.task!r}; built-in tasks: {', '.join(data.BUILTIN_TASKS)}"
                )
            return data.make_builtin(self.task, seed=self.seed, n=self.n, window=self.window)
        return data.load_data(self.path, head=self.head, window=self.window, horizon=self.horizon, stride=self.stride)

    def splits(self):
        from edgernn import data

        if self.mmap:
            from edgernn.data.lazy import lazy_splits

            return lazy_splits(self.path, head=self.head, window=self.window, horizon=self.horizon, stride=self.stride,
                               val_fraction=self.val_fraction, test_fraction=self.test_fraction, seed=self.seed)
        return data.split(self.load(), val_fraction=self.val_fraction, test_fraction=self.test_fraction, seed=self.seed)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DataSource":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})
