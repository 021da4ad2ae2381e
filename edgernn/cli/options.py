"""Option groups shared by several commands."""

from __future__ import annotations

from pathlib import Path

import os

import click



class Bounded(click.ParamType):
    """A number within bounds; outside them: ``--threads must be at least 1, got 0`` (one line, exit 2)."""

    def __init__(self, kind: type, low=None, high=None, *, low_open: bool = False, high_open: bool = False):
        self.kind, self.low, self.high, self.low_open, self.high_open = kind, low, high, low_open, high_open
        self.name = "integer" if kind is int else "number"

    def convert(self, value, param, ctx):
        number = (click.INT if self.kind is int else click.FLOAT).convert(value, param, ctx)
        if number != number:  # NaN
            self.fail(f"must be a number, got {value!r}", param, ctx)
        if self.low is not None and (number <= self.low if self.low_open else number < self.low):
            self.fail(f"must be {'above' if self.low_open else 'at least'} {self.low}, got {value}", param, ctx)
        if self.high is not None and (number >= self.high if self.high_open else number > self.high):
            self.fail(f"must be {'below' if self.high_open else 'at most'} {self.high}, got {value}", param, ctx)
        return number


# Numeric options are bounded: a value outside its range is one line and exit 2, never a hang or a silent oddity.
MAX_THREADS = max(8, 4 * (os.cpu_count() or 1))
THREADS = Bounded(int, 1, MAX_THREADS)
POSITIVE = Bounded(int, 1)
NON_NEGATIVE = Bounded(int, 0)
SIZE = Bounded(int, 1, 1 << 16)  # hidden units, batch sizes: more is a typo, not a model for an edge device
LENGTH = Bounded(int, 1, 1 << 20)  # steps in a window
LAYERS = Bounded(int, 1, 64)
PROBABILITY = Bounded(float, 0.0, 1.0, high_open=True)
POSITIVE_FLOAT = Bounded(float, 0.0, low_open=True)
NON_NEGATIVE_FLOAT = Bounded(float, 0.0)

TASK_HELP = "built-in task: sum (regression), sine (forecasting), bands (classification)"

_DATA_OPTIONS = [
    click.option("--task", help=TASK_HELP),
    click.option("--data", "data_path", type=click.Path(path_type=Path),
                 help="your data: .csv, .npy, .npz or UCR/UEA .ts"),
    click.option("--head", type=click.Choice(["regression", "forecast", "classification"]),
                 help="what to predict from --data (inferred where the file says)"),
    click.option("--window", type=LENGTH, help="steps per window (forecasting series; built-in tasks)"),
    click.option("--horizon", type=LENGTH, default=1, show_default=True, help="forecast this many steps after the window"),
    click.option("--stride", type=LENGTH, default=1, show_default=True, help="steps between forecasting windows"),
    click.option("--samples", "n", type=Bounded(int, 1, 1 << 24), help="number of sequences for built-in tasks"),
    click.option("--seed", type=int, default=0, show_default=True),
]


def data_options(f):
    for option in reversed(_DATA_OPTIONS):
        f = option(f)
    return f


def split_options(f):
    """--test-data and --val-fraction: an official test file, and how much of the training file validates."""
    f = click.option("--val-fraction", type=float, default=0.15, show_default=True,
                     help="share of the training data held out for early stopping")(f)
    return click.option("--test-data", "test_path", type=click.Path(path_type=Path),
                        help="official test file (e.g. a UCR/UEA _TEST file): scored on, never trained, tuned or "
                        "normalised on; --data is then split into train and validation only")(f)


def data_source(task, data_path, head, window, horizon, stride, n, seed, test_path=None, val_fraction=0.15):
    from edgernn.datasource import DataSource

    return DataSource(task=task, path=str(data_path) if data_path else None, head=head, window=window,
                      horizon=horizon, stride=stride, n=n, seed=seed, val_fraction=val_fraction,
                      test_path=str(test_path) if test_path else None)


def split_list(value: str | None) -> list[str]:
    """``"onnx, tflite"`` → ``["onnx", "tflite"]``; None → []."""
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def bundle_has_tflite(bundle: Path) -> bool:
    """Whether a bundle folder's manifest lists a .tflite variant (False for anything unreadable: the
    command itself then says what is wrong with it)."""
    import json

    try:
        manifest = json.loads((Path(bundle) / "manifest.json").read_text(encoding="utf-8"))
        return any(v.get("format") == "tflite" for v in manifest.get("variants", []))
    except (OSError, ValueError, AttributeError, TypeError):
        return False
