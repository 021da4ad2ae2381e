"""Option groups shared by several commands."""

from __future__ import annotations

from pathlib import Path

import click

TASK_HELP = "built-in task: sum (regression), sine (forecasting), bands (classification)"

_DATA_OPTIONS = [
    click.option("--task", help=TASK_HELP),
    click.option("--data", "data_path", type=click.Path(path_type=Path),
                 help="your data: .csv, .npy, .npz or UCR/UEA .ts"),
    click.option("--head", type=click.Choice(["regression", "forecast", "classification"]),
                 help="what to predict from --data (inferred where the file says)"),
    click.option("--window", type=int, help="steps per window (forecasting series; built-in tasks)"),
    click.option("--horizon", type=int, default=1, show_default=True, help="forecast this many steps after the window"),
    click.option("--stride", type=int, default=1, show_default=True, help="steps between forecasting windows"),
    click.option("--samples", "n", type=int, help="number of sequences for built-in tasks"),
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
