"""Accuracy commands: evaluate (every variant's task metric beside float) and compare (LSTM vs GRU)."""

from __future__ import annotations

from pathlib import Path

import click

from edgernn.cli.app import cli, emit_json, fmt
from edgernn.cli.options import LAYERS, NON_NEGATIVE_FLOAT, POSITIVE, SIZE, THREADS, data_options, data_source, split_options
from edgernn import dependencies
from edgernn.dependencies import require


@cli.command()
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--data", "data_path", type=click.Path(path_type=Path),
              help="test data file (default: the test split of the data the model was trained on)")
@click.option("--checkpoint", type=click.Path(path_type=Path), help="also score PyTorch float on these weights")
@click.option("--max-drop", type=NON_NEGATIVE_FLOAT,
              help="largest drop allowed vs ONNX fp32: accuracy points, or % relative MSE [default: 1 point, 2 %]")
@click.option("--plot", type=click.Path(path_type=Path), help="write a metric-vs-size/latency plot (.png)")
@click.option("--threads", type=THREADS, default=1, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def evaluate(bundle, data_path, checkpoint, max_drop, plot, threads, as_json):
    """Task metric of every variant on test data, beside float; exit 1 if one drops too far.

    Classifiers: accuracy and macro-F1. Regression and forecasting: MSE, MAE, R². Step variants are
    scored as a streaming device runs them: the step graph frame by frame over each window. Variants
    this machine cannot run (.tflite without a TFLite runtime) are skipped and listed.
    """
    require("evaluate", [*(dependencies.CHECKPOINT if checkpoint else ()), *(("matplotlib",) if plot else ())],
            {"matplotlib": "--plot", "torch": "--checkpoint", "safetensors": "--checkpoint"})
    from edgernn.errors import CheckFailedError
    from edgernn.evaluate import evaluate_bundle
    from edgernn.plots_evaluate import plot_evaluation

    report = evaluate_bundle(bundle, data_path=data_path, checkpoint=checkpoint, max_drop=max_drop, threads=threads)
    if plot:
        plot_evaluation(report, plot)
    if as_json:
        emit_json(report.to_dict())
    else:
        keys = list(report.scores[0].metrics)
        click.echo(f"{report.samples} windows of {report.data}; budget: drop ≤ {report.max_drop:g} {report.drop_unit}")
        click.echo(f"{'variant':<26}" + "".join(f"{k:>10}" for k in keys) + f"{'drop':>9}{'size KiB':>10}{'ms/window':>10}")
        for s in report.scores:
            click.echo(f"{s.variant:<26}" + "".join(f"{fmt(s.metrics[k]):>10}" for k in keys)
                       + f"{s.drop:>9.2f}{s.size / 1024:>10.1f}{s.latency_ms:>10.3f}" + ("" if s.passed else "  FAIL"))
        _print_skipped(report.skipped)
        for s in report.scores:
            if s.outside_calibration is not None:
                click.echo(f"calibration coverage of {s.variant}: {100 * s.outside_calibration:.2f} % of input values "
                           "outside its calibrated range" + (" (clipped; see export --calibration-margin)"
                                                             if s.outside_calibration else ""))
        for name, b in report.baselines.items():
            click.echo(f"baseline ({name}):  " + "  ".join(f"{k} {fmt(v)}" for k, v in b.items()))
        if report.verdict:
            click.echo(report.verdict)
        if plot:
            click.echo(f"plot: {plot}")
    if not report.passed:
        raise CheckFailedError("accuracy dropped beyond the budget for: "
                               + ", ".join(s.variant for s in report.scores if not s.passed))


def _print_skipped(skipped: list[dict[str, str]]) -> None:
    """One line per reason (not per variant): ``skipped tflite-window-fp32, …: running a TFLite model needs …``."""
    by_reason: dict[str, list[str]] = {}
    for s in skipped:
        by_reason.setdefault(s["reason"], []).append(s["variant"])
    for reason, names in by_reason.items():
        which = ", ".join(names) if len(names) <= 2 else f"{names[0]} … {names[-1]}"
        click.echo(f"skipped {len(names)} variant{'s' if len(names) > 1 else ''} ({which}): {reason}")


@cli.command()
@data_options
@split_options
@click.option("--hidden", "hidden_size", type=SIZE, default=32, show_default=True,
              help="LSTM hidden units; the GRU gets the size with the closest parameter count")
@click.option("--layers", "num_layers", type=LAYERS, default=1, show_default=True)
@click.option("--epochs", type=POSITIVE, default=60, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), help="folder for both runs and bundles [default: compare-<data>]")
@click.option("--plot", type=click.Path(path_type=Path), help="write the comparison plot here [default: <out>/compare.png]")
@click.option("--json", "as_json", is_flag=True)
@click.option("--quiet", is_flag=True, help="no progress bar")
def compare(task, data_path, head, window, horizon, stride, n, seed, test_path, val_fraction, hidden_size, num_layers,
            epochs, out, plot, as_json, quiet):
    """LSTM or GRU? Train both at the same parameter budget on the same split and compare.

    One table: parameters, training time, test metric in fp32 and int8, file sizes, window and
    streaming-step latency.
    """
    require("compare", dependencies.COMPARE)
    from edgernn.cli.app import stderr_is_tty
    from edgernn.compare import compare_cells, plot_comparison
    from edgernn.nn.train import TrainConfig, check_config

    source = data_source(task, data_path, head, window, horizon, stride, n, seed, test_path, val_fraction)
    config = TrainConfig(hidden_size=hidden_size, num_layers=num_layers, epochs=epochs, seed=seed)
    check_config(config)
    out = out or Path(f"compare-{source.label.split('.')[0]}")
    report = compare_cells(source, config, out, progress=not quiet and stderr_is_tty())
    plot = plot or out / "compare.png"
    plot_comparison(report, plot)
    if as_json:
        emit_json({**report.to_dict(), "plot": str(plot)})
        return
    click.echo(f"LSTM vs GRU on {report.data} ({report.metric}; int8 = int8-static)")
    click.echo(f"{'cell':<6}{'hidden':>7}{'params':>8}{'train s':>9}{'fp32':>10}{'int8':>10}"
               f"{'fp32 KiB':>10}{'int8 KiB':>10}{'window µs':>11}{'step µs':>9}")
    for r in report.results:
        int8 = fmt(r.int8) if r.int8 is not None else "-"
        int8_kib = f"{r.int8_size / 1024:.1f}" if r.int8_size else "-"
        step = f"{r.step_us:.1f}" if r.step_us is not None else "-"
        click.echo(f"{r.cell:<6}{r.hidden_size:>7}{r.parameters:>8}{r.train_seconds:>9.1f}{fmt(r.fp32):>10}{int8:>10}"
                   f"{r.fp32_size / 1024:>10.1f}{int8_kib:>10}{r.window_ms * 1000:>11.1f}{step:>9}")
    click.echo(f"plot: {plot}")
