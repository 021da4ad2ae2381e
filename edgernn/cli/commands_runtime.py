"""Device commands: run, info. Only numpy, onnxruntime and edgernn's runtime are imported."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from edgernn.cli import cli, emit_json


@cli.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--input", "input_path", type=click.Path(path_type=Path),
              help="windows to predict: .npy (N, T, F), .csv (one flattened window per row), .ts, .npz (x, lengths); "
              "a model trained on a file is fed files laid out like it")
@click.option("--stream", is_flag=True, help="read frames from stdin (or --input), one per line; answer each at once")
@click.option("--output", type=click.Path(path_type=Path), help="write here (.jsonl or .csv) instead of stdout")
@click.option("--format", "fmt_name", type=click.Choice(["jsonl", "csv"]), help="output format (default: from --output's suffix, else jsonl)")
@click.option("--variant", help="bundle variant to run (default onnx-window-fp32; with --stream its step twin)")
@click.option("--threads", type=int, default=1, show_default=True, help="inference threads")
@click.option("--backend", type=click.Choice(["auto", "onnxruntime", "ai-edge-litert", "tflite-runtime"]),
              default="auto", show_default=True,
              help="runtime for the variant: onnxruntime for .onnx; for .tflite the LiteRT interpreter or "
              "tflite-runtime (auto: the first installed)")
@click.option("--on-error", type=click.Choice(["skip", "stop"]), default="skip", show_default=True,
              help="--stream: a bad line is reported on stderr and skipped, or stops the stream (exit 2)")
@click.option("--reset-every", type=int, help="--stream: clear the state every N frames (an empty line also resets)")
@click.option("--lengths", "lengths_path", type=click.Path(path_type=Path),
              help="each window's real length (.npy or one integer per line), for padded windows of models "
              "exported with lengths")
def run(model, input_path, stream, output, fmt_name, variant, threads, backend, on_error, reset_every,
        lengths_path):
    """Predict with a bundle or a bare .onnx file, without torch.

    Inputs are in your data's units: the bundle's normalisation is applied, and outputs are
    de-normalised values, or a class label with probabilities.

    \b
    Windows:    edgernn run BUNDLE --input windows.npy --output preds.jsonl
    Streaming:  sensor | edgernn run BUNDLE --stream | consumer
    """
    from edgernn.bundle import atomic_write_text
    from edgernn.data.inputs import read_model_inputs
    from edgernn.errors import BadInputError
    from edgernn.runtime import load
    from edgernn.runtime.coverage import coverage_line, input_range, outside_share
    from edgernn.runtime.records import render

    fmt_name = fmt_name or ("csv" if output is not None and output.suffix == ".csv" else "jsonl")
    m = load(model, variant=variant, threads=threads, backend=backend)
    if stream:
        _run_stream(m, input_path, output, fmt_name, on_error, reset_every)
        return
    if input_path is None:
        raise BadInputError("give --input FILE with windows to predict, or --stream to read frames from stdin")
    if m.spec.vocab_size:
        x, lengths = read_integers(input_path, "token ids"), None
    else:  # read as the model's training file was read (its layout), variable length included
        x, lengths = read_model_inputs(input_path, m.spec)
    if lengths_path is not None:
        lengths = read_integers(lengths_path, "lengths").reshape(-1)
    records = m.predict(x, lengths=lengths).records()
    value_range = input_range(m.variant)
    if value_range is not None:  # int8-static: say how much of this input its calibration covers
        from edgernn.runtime.model import prepare_windows

        share = outside_share(prepare_windows(m.spec, x)[0], value_range, lengths)
        click.echo(coverage_line(m.variant.name, share, value_range), err=True)
    text = render(records, fmt_name)
    if output is None:
        click.echo(text, nl=False)
    else:
        atomic_write_text(output, text)
        click.echo(f"wrote {len(records)} predictions to {output}", err=True)


@cli.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True)
def info(model, as_json):
    """Describe a bundle or an ONNX file: model spec, variants, inputs and outputs."""
    from edgernn.info import describe

    d = describe(model)
    if as_json:
        emit_json(d)
        return
    spec = d.get("spec")
    if spec and spec.get("module"):  # exported from the user's own module: fields not known are left out
        how = d.get("module", {}).get("path", "")
        cell = f"{spec['cell'].upper()} " if spec.get("cell") else ""
        click.echo(f"{spec['module']} ({cell}module{', ' + how if how else ''}) → "
                   f"{spec.get('head') or 'raw outputs'} ({spec['output_size']} outputs)")
    elif spec:
        arch = f"{spec['num_layers']}-layer {'bidirectional ' if spec['bidirectional'] else ''}{spec['cell'].upper()}"
        click.echo(f"{arch}, hidden {spec['hidden_size']}, {spec['input_size']} features → "
                   f"{spec['head']} ({spec['output_size']} outputs){', task ' + spec['task'] if spec.get('task') else ''}")
    if spec and spec.get("labels"):
        click.echo(f"labels: {', '.join(spec['labels'])}")
    if spec and spec.get("window"):
        click.echo(f"trained on windows of {spec['window']} steps"
                   + (" (variable length: each sequence runs at its true length)" if spec.get("variable_length") else ""))
    if spec and spec.get("data_layout"):
        click.echo(f"inputs read as the training file was laid out: {spec['data_layout']}")
    if spec and spec.get("forecast_transform"):
        t = spec["forecast_transform"]
        click.echo("forecast transform (applied by the runtime): "
                   + ", ".join(f"{k} {v}" for k, v in t.items()))
    if "streaming" in d:
        s = d["streaming"]
        click.echo("streaming: " + ("yes (step graph)" if s.get("supported") else f"no — {s.get('reason', '')}"))
    for v in d.get("variants", []):
        parity = f"  parity max abs {v['parity']['max_abs']:.2g}" if v.get("parity") else ""
        click.echo(f"  {v['name']:<26} {v['file']:<28} {v['size'] / 1024:8.1f} KiB  opset {v.get('opset')}{parity}")
        for t in v.get("inputs", []):
            click.echo(f"      in  {t['name']:<6} {tuple(t['shape'])}")
        for t in v.get("outputs", []):
            click.echo(f"      out {t['name']:<6} {tuple(t['shape'])}")
        if v.get("requires"):
            click.echo(f"      needs   {', '.join(v['requires'])}")
        if v.get("quantization", {}).get("compute"):
            click.echo(f"      compute {v['quantization']['compute']}")
        report = v.get("precision_report") or []
        if report:
            missed = [e for e in report if not e["achieved"]]
            click.echo(f"      precision report: {len(report) - len(missed)} of {len(report)} weights "
                       f"stored as asked ({v.get('precision')})" + (f"; NOT: {len(missed)}" if missed else ""))
            for e in report:
                click.echo(f"        {e['initializer']:<24} {e['op']:<13} {str(tuple(e['shape'])):<12} "
                           f"asked {e['asked']:<13} stored {e['stored']:<8} compute {e['compute']}")
    for t in d.get("inputs", []) if "variants" not in d else []:
        click.echo(f"  in  {t['name']:<6} {tuple(t['shape'])}  {t['type']}")
    for t in d.get("outputs", []) if "variants" not in d else []:
        click.echo(f"  out {t['name']:<6} {tuple(t['shape'])}  {t['type']}")
    for k in ("graph", "precision", "ir_version", "opset", "ops"):
        if k in d:
            click.echo(f"{k}: {d[k]}")


def _run_stream(model, input_path, output, fmt_name, on_error, reset_every) -> None:
    from edgernn.runtime.stream_io import run_stream

    session = model.stream(batch=1)
    source = open(input_path, encoding="utf-8") if input_path else sys.stdin
    sink = open(output, "w", encoding="utf-8") if output else sys.stdout
    warn = lambda message: click.echo(f"warning: {message}", err=True)  # noqa: E731
    summary = None
    try:
        summary = run_stream(session, source, sink, fmt=fmt_name, on_error=on_error,
                             reset_every=reset_every, warn=warn)
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly, like other filters
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return
    finally:
        if input_path:
            source.close()
        if output:
            sink.close()
    if summary is not None:
        click.echo(summary.line(), err=True)
    else:
        click.echo(f"stream interrupted after {session.steps} steps since the last reset", err=True)


def read_integers(path: Path, what: str):
    """Integers from .npy, or from .csv/.txt (comma-separated, one row per window): token ids or lengths."""
    import numpy as np

    from edgernn.errors import BadInputError

    if not Path(path).is_file():
        raise BadInputError(f"{path}: no such file")
    try:
        values = np.load(path) if Path(path).suffix == ".npy" else np.loadtxt(path, delimiter=",", ndmin=2)
    except ValueError as e:
        raise BadInputError(f"{path}: expected {what} as integers, could not read them ({e})") from None
    if values.size == 0:
        raise BadInputError(f"{path}: no {what} in the file")
    if not np.all(np.isfinite(values)) or np.any(values != np.round(values)):
        raise BadInputError(f"{path}: expected {what} as integers, got other numbers")
    return values.astype(np.int64)
