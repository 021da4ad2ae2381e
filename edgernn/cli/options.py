"""Option groups shared by several commands."""

from __future__ import annotations

from pathlib import Path

import os

import click

# Numeric options are bounded: a value outside its range is one line and exit 2, never a hang or a silent oddity.
MAX_THREADS = max(8, 4 * (os.cpu_count() or 1))
THREADS = click.IntRange(1, MAX_THREADS)
POSITIVE = click.IntRange(min=1)
NON_NEGATIVE = click.IntRange(min=0)
SIZE = click.IntRange(1, 1 << 16)  # hidden units, batch sizes: more is a typo, not a model for an edge device
LENGTH = click.IntRange(1, 1 << 20)  # steps in a window
PROBABILITY = click.FloatRange(0.0, 1.0, max_open=True)
POSITIVE_FLOAT = click.FloatRange(min=0.0, min_open=True)
NON_NEGATIVE_FLOAT = click.FloatRange(min=0.0)

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
    click.option("--samples", "n", type=click.IntRange(1, 1 << 24), help="number of sequences for built-in tasks"),
    click.option("--seed", type=int, default=0, show_default=True),
]


def data_options(f):
    for option in reversed(_DATA_OPTIONS):
        f = option(f)
    return f


def data_source(task, data_path, head, window, horizon, stride, n, seed):
    from edgernn.datasource import DataSource

    return DataSource(task=task, path=str(data_path) if data_path else None, head=head, window=window,
                      horizon=horizon, stride=stride, n=n, seed=seed)
