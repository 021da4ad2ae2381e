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


def data_source(task, data_path, head, window, horizon, stride, n, seed):
    from edgernn.datasource import DataSource

    return DataSource(task=task, path=str(data_path) if data_path else None, head=head, window=window,
                      horizon=horizon, stride=stride, n=n, seed=seed)


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
