"""Workstation commands: train, export, validate."""

from __future__ import annotations

from pathlib import Path

import click

from edgernn import dependencies
from edgernn.cli.app import cli, emit_json, fmt, stderr_is_tty
from edgernn.cli.options import bundle_has_tflite, split_list
from edgernn.cli.export_module import module_options
from edgernn.cli.options import (
    LAYERS,
    LENGTH,
    POSITIVE,
    POSITIVE_FLOAT,
    PROBABILITY,
    SIZE,
    THREADS,
    Bounded,
    data_options,
    data_source,
    split_options,
)
from edgernn.cli.train_scale import apply_scale, scale_options
from edgernn.dependencies import require


@cli.command()
@data_options
@split_options
@click.option("--cell", type=click.Choice(["lstm", "gru"]), default="lstm", show_default=True)
@click.option("--hidden", "hidden_size", type=SIZE, default=32, show_default=True, help="hidden units per layer")
@click.option("--layers", "num_layers", type=LAYERS, default=1, show_default=True)
@click.option("--bidirectional", is_flag=True, help="bidirectional backbone (window graph only: cannot stream)")
@click.option("--dropout", type=PROBABILITY, default=0.0, show_default=True, help="between stacked layers")
@click.option("--epochs", type=POSITIVE, help="at most; early stopping may end sooner [default: about 1000 gradient "
              "steps, 60..500]")
@click.option("--batch-size", type=SIZE, help="[default: from the training set's size, 8..64]")
@click.option("--lr", type=POSITIVE_FLOAT, default=5e-3, show_default=True, help="Adam learning rate")
@click.option("--patience", type=POSITIVE,
              help="epochs without validation improvement before stopping [default: about 200 gradient steps, 8..30]")
@click.option("--threads", type=THREADS, help="torch threads")
@click.option("--target", "forecast_target", type=click.Choice(["value", "change"]), default="value",
              show_default=True, help="forecasting: predict the value, or its change from the window's last value")
@click.option("--log", is_flag=True, help="forecasting: model the log of the series (values must be > 0)")
@click.option("--window-scale", is_flag=True,
              help="forecasting: centre and scale each window by its own mean and standard deviation")
@click.option("--season", type=POSITIVE, help="forecasting: steps per season, for the seasonal-naive baseline "
              "[default: 12 for monthly dates, else none]")
@scale_options
@click.option("--out", type=click.Path(path_type=Path), help="run folder to write (required unless --resume)")
@click.option("--json", "as_json", is_flag=True, help="print the metrics as JSON")
@click.option("--quiet", is_flag=True, help="no progress bar")
def train(task, data_path, head, window, horizon, stride, test_path, val_fraction, cell, hidden_size, num_layers,
          bidirectional, dropout, epochs, batch_size, lr, patience, n, seed, threads, forecast_target, log,
          window_scale, season, out, as_json, quiet, **scale):
    """Train an LSTM/GRU on a built-in task or your own data; write a checkpoint, metrics and plots."""
    require("train", dependencies.TRAIN)
    from edgernn.nn.train import TrainConfig, check_config, train as run_training

    source = None
    if not scale["resume"]:
        from dataclasses import replace

        source = data_source(task, data_path, head, window, horizon, stride, n, seed, test_path, val_fraction)
        source = replace(source, season=season, forecast_target=forecast_target, log=log, window_scale=window_scale)
    config = TrainConfig(cell=cell, hidden_size=hidden_size, num_layers=num_layers, bidirectional=bidirectional,
                         dropout=dropout, epochs=epochs, batch_size=batch_size, lr=lr, patience=patience,
                         seed=seed, threads=threads)
    source, config, out, resume = apply_scale(source, config, out, **scale)
    check_config(config)
    result = run_training(source, config, out, progress=not quiet and stderr_is_tty(), resume=resume)
    m = result.metrics
    if not m:  # a torchrun rank other than 0: rank 0 reports and writes
        return
    for note in m["notes"]:  # on stderr, so that --json output stays parseable
        click.echo(f"note: {note}", err=True)
    if result.spec.forecast_transform is not None:
        click.echo(f"note: forecast transform kept in the spec and applied by the runtime: "
                   f"{result.spec.forecast_transform.describe()}", err=True)
    if as_json:
        emit_json({"run_dir": str(out), "spec": result.spec.to_dict(), **m})
        return
    click.echo(f"trained {cell} ({m['parameters']} parameters) on {m['task']} in {m['train_seconds']} s, "
               f"best epoch {m['best_epoch']} of {m['epochs_run']}")
    click.echo(f"{m['scored_on']}:  " + "  ".join(f"{k} {fmt(v)}" for k, v in m["test"].items()))
    for name, b in m["baselines"].items():
        click.echo(f"baseline ({name}):  " + "  ".join(f"{k} {fmt(v)}" for k, v in b.items()))
    if m.get("verdict"):
        click.echo(m["verdict"])
    hw = m["hardware"]
    click.echo(f"{hw['device']}, {hw['precision']}, {hw['processes']} process(es): "
               f"{hw['samples_per_s']:.0f} samples/s ({hw['step_samples_per_s']:.0f} in optimizer steps)")
    click.echo(f"wrote {out}/ (model.safetensors, checkpoint.json, metrics.json, resume.pt, plots)")


@cli.command()
@module_options
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), required=True, help="bundle folder to write")
@click.option("--no-validate", is_flag=True, help="skip the parity check (not recommended)")
@click.option("--opset", type=Bounded(int, 1, 99), help="ONNX opset to write (default 17)")
@click.option("--ir-version", type=Bounded(int, 1, 99), help="ONNX IR version to write (default 8)")
@click.option("--target-runtime", help="the runtime the device has, e.g. onnxruntime==1.16: picks IR version and "
              "opset it loads, leaves out variants it cannot run")
@click.option("--quantize", "precisions", metavar="LIST",
              help="also write these precisions, comma-separated: fp16, int8-weights (int8 storage, float speed), "
                   "int8-dynamic (int8 compute: LSTM on onnxruntime, TFLite), int8-static (docs/quantization.md)")
@click.option("--calibration", "calibration_path", type=click.Path(path_type=Path),
              help="windows (.npy/.npz/.csv, data units) to calibrate int8 on (default: the checkpoint's "
              "training split; with --module, int8-static needs them)")
@click.option("--calibration-margin", type=Bounded(float, 0.0, 100.0), default=0.0, show_default=True,
              help="widen int8-static's calibrated input range by this fraction of its width on each side "
              "(for data that drifts beyond the calibration windows, e.g. 0.5)")
@click.option("--format", "formats", default="onnx", show_default=True, metavar="LIST",
              help="model formats, comma-separated: onnx, or onnx,tflite (TFLite needs edgernn[tflite])")
@click.option("--keep-passing", is_flag=True,
              help="when a variant fails parity, write the others and list the refused ones (the fp32 window "
              "graph, every bundle's reference, must pass)")
@click.option("--json", "as_json", is_flag=True, help="print the manifest summary as JSON")
def export(checkpoint, out, no_validate, opset, ir_version, target_runtime, precisions, calibration_path,
           calibration_margin, formats, keep_passing, as_json, best_effort=False):
    """Export a checkpoint to a bundle of ONNX model files, validated against the NumPy reference.

    Each precision in --quantize adds a window and a step file (model.int8-static.onnx,
    model.step.int8-static.onnx, ...), each validated with its own tolerance and listed in the
    manifest with a precision report of every weight.
    """
    require("export", dependencies.export_needs(split_list(formats), split_list(precisions)))
    from edgernn.export import export_checkpoint
    from edgernn.export.graph_builder import DEFAULT_IR_VERSION, DEFAULT_OPSET
    from edgernn.quantize import parse_precisions

    quantize = parse_precisions(precisions)

    target = None
    if target_runtime is not None:
        from edgernn.export.targets import parse_target

        target = parse_target(target_runtime)
        ir_version, opset = target.pick(ir_version, opset)
    result = export_checkpoint(checkpoint, out, validate=not no_validate, target=target,
                               opset=opset or DEFAULT_OPSET, ir_version=ir_version or DEFAULT_IR_VERSION,
                               quantize=quantize, calibration_path=calibration_path,
                               calibration_margin=calibration_margin, progress=stderr_is_tty(),
                               keep_passing=keep_passing, best_effort=best_effort,
                               formats=tuple(f.strip() for f in formats.split(",") if f.strip()))
    variants = [{"name": v.name, "file": v.file, "size": v.size, "precision": v.precision, "requires": list(v.requires),
                 "parity": v.parity, "latency": v.quantization.get("latency", {})} for v in result.manifest.variants]
    for e in result.manifest.not_written:
        click.echo(f"not written: {e['variant']}: {e['reason']}", err=True)
    if as_json:
        emit_json({"bundle": str(out), "seconds": round(result.seconds, 3), "variants": variants,
                   "validated": not no_validate, "target": result.manifest.target,
                   "not_written": list(result.manifest.not_written), "refused": list(result.refused)})
        return
    click.echo(f"exported {checkpoint} → {out}/ in {result.seconds:.2f} s")
    for v in variants:
        parity = f"max abs {fmt(v['parity']['max_abs'])} vs numpy" if v["parity"] else "not validated"
        needs = f"  needs {', '.join(v['requires'])}" if v["requires"] else ""
        speed = f"  {v['latency']['vs_fp32']:.2f}× fp32 time" if "vs_fp32" in v["latency"] else ""
        click.echo(f"  {v['name']:<26} {v['file']:<30} {v['size'] / 1024:8.1f} KiB  {parity}{speed}{needs}")
    for r in result.refused:
        click.echo(f"  refused {r['variant']}: {r['reason']}")
    if target is not None:
        t = result.manifest.target
        click.echo(f"target {t['runtime']}: IR version {t['ir_version']}, opset {t['opset']}")
        for r in t["refused"]:
            click.echo(f"  refused {r['variant']}: {r['reason']}")


def parity_line(r) -> str:
    """One variant of a parity report: verdict, worst error, tolerance, margin."""
    c = r.worst_comparison()
    tol = r.tolerance
    tolerance = f"atol {tol.atol:g} rtol {tol.rtol:g}" + (" (range)" if tol.scale == "range" else "")
    if c is None:
        return f"  FAIL  {r.variant:<26} nothing was compared"
    used = c.tolerance_used
    if used != used:  # not measured
        margin = ""
    elif used == 0:
        margin = "exact"
    elif used <= 1:
        margin = f"{1 / used:,.0f}×" if used <= 0.1 else f"{1 / used:.2g}×"
    else:
        margin = f"{used:.3g}× over"
    where = f"{c.output} vs {c.against}"
    return (f"  {'ok' if r.passed else 'FAIL':<4}  {r.variant:<26} max abs {fmt(c.max_abs):>9}  {where:<22} "
            f"{tolerance:<28} {margin}").rstrip()


def _print_parity_details(r) -> None:
    """Every reference and output: the probes that decide (the model's own data), then the drift ones."""
    for decides in (True, False):
        for against in sorted({c.against for c in r.comparisons}):
            for output in dict.fromkeys(c.output for c in r.comparisons):
                cs = [c for c in r.comparisons if c.against == against and c.output == output and c.decides == decides]
                if not cs:
                    continue
                ok = all(c.passed for c in cs)
                probes = "+".join(sorted({c.probe for c in cs}))
                verdict = ("ok" if ok else "FAIL") if decides else ("drift" + ("" if ok else " (beyond tolerance)"))
                click.echo(f"        vs {against:<6} {output:<12} {probes:<7} max abs {fmt(max(c.max_abs for c in cs)):>9}  "
                           f"max rel {fmt(max(c.max_rel for c in cs)):>9}  mean abs {fmt(max(c.mean_abs for c in cs)):>9}"
                           f"  over {len(cs)} cases  {verdict}")


@cli.command()
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--checkpoint", type=click.Path(path_type=Path), help="also compare with PyTorch on these weights")
@click.option("--batch", "batches", type=SIZE, multiple=True, help="batch sizes to sweep (default 1, 3, 16)")
@click.option("--length", "lengths", type=LENGTH, multiple=True, help="lengths to sweep (default 1, window, 3×window)")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--warn-only", is_flag=True, help="report failures but exit 0")
@click.option("--input", "input_path", type=click.Path(path_type=Path),
              help="an ONNX file's inputs by name (.npz; .npy/.csv for one input); default: drawn at random")
@click.option("--verbose", "-v", is_flag=True, help="every reference and output, not only each variant's worst")
@click.option("--json", "as_json", is_flag=True)
def validate(bundle, checkpoint, batches, lengths, seed, warn_only, input_path, verbose, as_json):
    """Check every variant of a bundle against the NumPy reference (and PyTorch with --checkpoint),
    or every LSTM/GRU/RNN node of any ONNX file (BUNDLE is a .onnx file) against the ONNX operator
    equations in NumPy, on the inputs each node gets in the running graph.

    One line per variant: its worst error, where it was, the precision's tolerance and the margin
    (how many times larger the error could be and still pass); --verbose for every comparison.
    Exit code 0 when every variant is within its precision's tolerance, 1 otherwise.
    """
    needs = list(dependencies.VALIDATE) + (list(dependencies.CHECKPOINT) if checkpoint else [])
    if bundle_has_tflite(bundle):
        needs.append(dependencies.TFLITE_RUNTIME)
    require("validate", needs, {dependencies.TFLITE_RUNTIME: "the bundle's .tflite variants"})
    from edgernn.errors import CheckFailedError
    from edgernn.validate import validate_bundle

    if Path(bundle).suffix == ".onnx":
        _validate_graph(bundle, input_path, seed, warn_only, as_json)
        return

    reports = validate_bundle(bundle, checkpoint=checkpoint, batches=batches or (1, 3, 16),
                              stream_batches=batches or (1, 5), lengths=lengths or None, seed=seed)
    passed = all(r.passed for r in reports)
    if as_json:
        emit_json({"bundle": str(bundle), "passed": passed, "variants": [r.to_dict() for r in reports]})
    else:
        click.echo(f"{'':8}{'variant':<26} {'closest to its tolerance':<41} {'tolerance':<28} margin")
        for r in reports:
            click.echo(parity_line(r))
            if verbose:
                _print_parity_details(r)
        click.echo("parity: " + ("passed" if passed else "FAILED"))
    if not passed and not warn_only:
        raise CheckFailedError("parity check failed for: " + ", ".join(r.variant for r in reports if not r.passed))


def _validate_graph(path: Path, input_path, seed: int, warn_only: bool, as_json: bool) -> None:
    from edgernn.errors import CheckFailedError
    from edgernn.validate_graph import validate_graph

    feeds = None
    if input_path is not None:
        from edgernn.runtime.graph import read_feeds
        from edgernn.validate_graph import graph_inputs

        feeds = read_feeds(input_path, graph_inputs(path))
    report = validate_graph(path, feeds=feeds, seed=seed)
    if as_json:
        emit_json(report.to_dict())
    else:
        t = report.tolerance
        click.echo(f"{path}: {len({c.node for c in report.checks})} recurrent node(s) against the NumPy reference "
                   f"(tolerance atol {t['atol']:g}, rtol {t['rtol']:g})"
                   + (f"; inputs drawn at random: {', '.join(report.drawn_inputs)}" if report.drawn_inputs else ""))
        for c in report.checks:
            click.echo(f"  {c.node:<20} {c.op:<5} {c.slot:<4} {c.output:<16} {str(c.shape):<16} max abs "
                       f"{fmt(c.max_abs):>9}  max rel {fmt(c.max_rel):>9}  {'ok' if c.passed else 'FAIL'}")
        for n in report.time_major:
            click.echo(f"  {n}: layout=1, which onnxruntime does not implement: run as layout=0 between Transposes")
        for n in report.not_checked:
            click.echo(f"  not checked (inside a subgraph): {n}")
        click.echo("parity: " + ("passed" if report.passed else "FAILED"))
    if not report.passed and not warn_only:
        raise CheckFailedError(f"{path}: " + "; ".join(report.failures()))
