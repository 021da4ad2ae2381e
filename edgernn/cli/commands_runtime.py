"""Device commands: run, info. Only numpy, onnxruntime and edgernn's runtime are imported."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from edgernn.cli.app import cli, emit_json
from edgernn.cli.options import POSITIVE, THREADS
from edgernn.errors import BadInputError


@cli.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--input", "input_path", type=click.Path(path_type=Path),
              help="windows to predict: .npy (N, T, F), .csv (one flattened window per row), .ts, .npz (x, lengths); "
              "a model trained on a file is fed files laid out like it")
@click.option("--stream", is_flag=True, help="read frames from stdin (or --input), one per line; answer each at once")
@click.option("--mode", type=click.Choice(["auto", "sliding", "stateful"]), default="auto", show_default=True,
              help="--stream: sliding = each output is `run` on the last T frames (T: the training window); "
                   "stateful = state carried since the last reset (models trained on whole streams); "
                   "auto = sliding when the model records its training window")
@click.option("--hop", type=int, default=1, show_default=True, help="--stream: answer every N frames")
@click.option("--window", "window", type=int, help="--stream: frames per sliding window (default: the training window)")
@click.option("--output", type=click.Path(path_type=Path), help="write here (.jsonl or .csv) instead of stdout")
@click.option("--output-format", "fmt_name", type=click.Choice(["jsonl", "csv"]),
              help="output format (default: from --output's suffix, else jsonl)")
@click.option("--format", "legacy_fmt", type=click.Choice(["jsonl", "csv"]), hidden=True,
              help="old name of --output-format")
@click.option("--variant", help="bundle variant to run (default onnx-window-fp32; with --stream its step twin)")
@click.option("--threads", type=THREADS, default=1, show_default=True, help="inference threads")
@click.option("--backend", type=click.Choice(["auto", "onnxruntime", "ai-edge-litert", "tflite-runtime"]),
              default="auto", show_default=True,
              help="runtime for the variant: onnxruntime for .onnx; for .tflite the LiteRT interpreter or "
              "tflite-runtime (auto: the first installed)")
@click.option("--on-error", type=click.Choice(["skip", "stop"]), default="skip", show_default=True,
              help="--stream: a bad line is reported on stderr and skipped, or stops the stream (exit 2)")
@click.option("--reset-every", type=POSITIVE, help="--stream: clear the state every N frames (an empty line also resets)")
@click.option("--lengths", "lengths_path", type=click.Path(path_type=Path),
              help="each window's real length (.npy or one integer per line), for padded windows of models "
              "exported with lengths")
@click.option("--precision", "digits", type=click.IntRange(0, 17),
              help="round every output to this many decimals (default: full precision)")
def run(model, input_path, stream, mode, hop, window, output, fmt_name, legacy_fmt, variant, threads, backend,
        on_error, reset_every, lengths_path, digits):
    """Predict with a bundle or a bare .onnx/.tflite file, without torch.

    Inputs are in your data's units: the bundle's normalisation is applied, and outputs are
    de-normalised values, or a class label with probabilities.

    \b
    Windows:    edgernn run BUNDLE --input windows.npy --output preds.jsonl
    Streaming:  sensor | edgernn run BUNDLE --stream | consumer
    Any ONNX:   edgernn run model.onnx --input inputs.npz --output outputs.npz   (inputs and outputs by name)

    Streaming records carry the frame number, how many frames the output is based on (step), and
    warmup: true while that is fewer than the training window.
    """
    fmt_name = fmt_name or legacy_fmt
    from edgernn.bundle import atomic_write_text
    from edgernn.data.inputs import read_model_inputs
    from edgernn.runtime import load
    from edgernn.runtime.coverage import coverage_line, input_range, outside_share
    from edgernn.runtime.records import render

    if Path(model).suffix == ".onnx" and Path(model).is_file():
        from edgernn.runtime.graph import GraphModel

        graph = GraphModel(model, threads)
        if not graph.edgernn:  # any ONNX file: inputs by name, outputs by name
            _run_graph(graph, input_path=input_path, stream=stream, output=output, fmt_name=fmt_name,
                       variant=variant, lengths_path=lengths_path, digits=digits, backend=backend)
            return
    fmt_name = fmt_name or ("csv" if output is not None and output.suffix == ".csv" else "jsonl")
    if output is None and sys.stdout is None:  # fd 1 closed: the answers would go nowhere
        raise BadInputError("stdout is closed: give --output FILE for the predictions")
    m = load(model, variant=variant, threads=threads, backend=backend)
    if stream:
        _run_stream(m, input_path, output, fmt_name, on_error, reset_every, mode, hop, window)
        return
    if mode != "auto" or hop != 1 or window is not None:
        raise BadInputError("--mode, --hop and --window apply to --stream")
    if input_path is None:
        raise BadInputError("give --input FILE with windows to predict, or --stream to read frames from stdin")
    if m.spec.vocab_size:
        x, lengths = read_integers(input_path, "token ids"), None
    else:  # read as the model's training file was read (its layout), variable length included
        x, lengths = read_model_inputs(input_path, m.spec)
    if lengths_path is not None:
        lengths = read_integers(lengths_path, "lengths").reshape(-1)
    records = m.predict(x, lengths=lengths).records(digits)
    value_range = input_range(m.variant)
    if value_range is not None:  # int8-static: say how much of this input its calibration covers
        from edgernn.runtime.processing import prepare_windows

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
@click.option("--verbose", "-v", is_flag=True, help="each variant's inputs, outputs, compute and precision report")
@click.option("--json", "as_json", is_flag=True)
def info(model, verbose, as_json):
    """Describe a bundle or a model file: the model, and one line per variant (--verbose for the rest)."""
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
        opset = f"  opset {v['opset']}" if v.get("opset") is not None else ""
        needs = f"  needs {', '.join(v['requires'])}" if v.get("requires") else ""
        latency = (d.get("precision_info", {}).get(v["name"]) or {}).get("latency") or {}
        speed = f"  {latency['vs_fp32']:.2f}× fp32 time" if isinstance(latency.get("vs_fp32"), (int, float)) else ""
        click.echo(f"  {v['name']:<26} {v['file']:<30} {v['size'] / 1024:8.1f} KiB{opset}{parity}{speed}{needs}")
        if not verbose:
            continue
        for t in v.get("inputs", []):
            click.echo(f"      in  {t['name']:<6} {tuple(t['shape'])}")
        for t in v.get("outputs", []):
            click.echo(f"      out {t['name']:<6} {tuple(t['shape'])}")
        if v.get("requires"):
            click.echo(f"      needs   {', '.join(v['requires'])}")
        info = d.get("precision_info", {}).get(v["name"]) or {}
        if info:
            said = f"  ({info['described_by']})" if info.get("described_by") else ""
            click.echo(f"      storage {info.get('storage', 'not recorded')}{said}")
            click.echo(f"      compute {info.get('compute', 'not recorded')}")
            click.echo(f"      fast on {'; '.join(info.get('fast_on', [])) or 'no runtime edgernn knows'}")
            for slow in info.get("slow_on", []):
                click.echo(f"      slow on {slow}")
            latency = info.get("latency") or {}
            if "vs_fp32" in latency:
                click.echo(f"      latency {latency['vs_fp32']:.2f}× fp32 (batch 1, {latency.get('time_steps', '?')} "
                           f"step(s), {latency.get('runtime', '?')}, measured at export)")
            elif latency.get("not_measured"):
                click.echo(f"      latency not measured at export: {latency['not_measured']}")
        report = v.get("precision_report") or []
        if report:
            missed = [e for e in report if not e["achieved"]]
            click.echo(f"      precision report: {len(report) - len(missed)} of {len(report)} weights "
                       f"stored as asked ({v.get('precision')})" + (f"; NOT: {len(missed)}" if missed else ""))
            for e in report:
                click.echo(f"        {e['initializer']:<24} {e['op']:<13} {str(tuple(e['shape'])):<12} "
                           f"asked {e['asked']:<13} stored {e['stored']:<8} compute {e['compute']}")
    for e in d.get("not_written", []):
        click.echo(f"not written: {e['variant']}: {e['reason']}")
    for t in d.get("inputs", []) if "variants" not in d else []:
        click.echo(f"  in  {t['name']:<6} {tuple(t['shape'])}  {t['type']}")
    for t in d.get("outputs", []) if "variants" not in d else []:
        click.echo(f"  out {t['name']:<6} {tuple(t['shape'])}  {t['type']}")
    for k in ("graph", "precision", "ir_version", "opset", "ops"):
        if d.get(k) is not None:
            click.echo(f"{k}: {d[k]}")
    for n in d.get("rnn_nodes", []):
        extras = {k: v for k, v in n.items() if k not in ("name", "op", "direction", "hidden_size", "layout",
                                                          "inputs", "outputs")}
        click.echo(f"  {n['op']} '{n['name']}': {n['direction']}, hidden {n['hidden_size']}, layout {n['layout']}"
                   + "".join(f", {k} {v}" for k, v in extras.items()))
    if d.get("onnxruntime"):
        click.echo(f"onnxruntime: {d['onnxruntime']}")

    if d.get("variants") and not verbose:
        click.echo("(--verbose: each variant's inputs, outputs, compute and precision report)")


def _run_graph(graph, *, input_path, stream, output, fmt_name, variant, lengths_path, digits, backend) -> None:
    """An ONNX file edgernn did not write: every input by name in, every output by name out, full precision."""
    from edgernn.errors import BadInputError
    from edgernn.runtime.graph import outputs_json, write_outputs

    names = ", ".join(n for n, _, _ in graph.inputs)
    for given, why in ((stream, "--stream needs a step graph written by edgernn (it knows the state inputs)"),
                       (variant, "--variant picks a variant of a bundle"),
                       (lengths_path, "--lengths is for models exported by edgernn with lengths; give sequence "
                                      "lengths as a named input in the .npz"),
                       (fmt_name == "csv", "--format csv cannot hold named tensors of any rank: use .npz or jsonl"),
                       (backend not in ("auto", "onnxruntime"), f"an ONNX file runs on onnxruntime, not {backend}")):
        if given:
            raise BadInputError(f"{graph.path} is an ONNX file without edgernn metadata: {why}")
    if input_path is None:
        raise BadInputError(f"give --input FILE: an .npz with arrays named {names} (or .npy/.csv for a single input)")
    outputs = graph.run(graph.read_feeds(input_path))
    if output is None:
        click.echo(outputs_json(outputs, digits), nl=False)
    else:
        write_outputs(outputs, output, digits)
        click.echo(f"wrote {', '.join(outputs)} to {output}", err=True)


def _run_stream(model, input_path, output, fmt_name, on_error, reset_every, mode, hop, window) -> None:
    """Frames from ``--input`` or stdin, answers to ``--output`` or stdout. An existing ``--output`` file is
    replaced only once the stream has answered a frame (or ended cleanly), never by a stream that failed first."""
    from edgernn.runtime.stream_io import OutputOnFirstWrite, pick_mode, run_stream

    mode, T = pick_mode(model.spec, mode, window)
    if hop < 1:
        from edgernn.errors import BadInputError

        raise BadInputError(f"--hop must be at least 1 frame, got {hop}")
    session = model.sliding(T, hop) if mode == "sliding" else model.stream(batch=1)
    source = _open_frames(input_path)
    sink = _open_output(output) if output else sys.stdout
    warn = lambda message: click.echo(f"warning: {message}", err=True)  # noqa: E731
    summary, finished = None, False
    try:
        summary = run_stream(session, source, sink, fmt=fmt_name, on_error=on_error,
                             reset_every=reset_every, warn=warn, window=T, hop=hop)
        finished = True
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly, like other filters
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return
    finally:
        source.close()
        if isinstance(sink, OutputOnFirstWrite):
            sink.close(keep=finished)
    if summary is not None:
        click.echo(summary.line(), err=True)
    else:
        click.echo("stream interrupted", err=True)


def _open_frames(input_path: Path | None):
    """The text the frames come from. Undecodable bytes become U+FFFD, so a line of binary garbage is one bad
    line (reported and skipped), not the end of the stream."""
    import io

    if input_path is None:
        if sys.stdin is None:  # fd 0 closed
            raise BadInputError("stdin is closed: pipe frames in, or give --input FILE")
        if sys.stdin.closed:
            raise BadInputError("stdin is closed: pipe frames in, or give --input FILE")
        buffer = getattr(sys.stdin, "buffer", None)
        if buffer is None:  # stdin replaced by a text-only stream
            return _Borrowed(sys.stdin)
        return _Borrowed(io.TextIOWrapper(buffer, encoding="utf-8", errors="replace"), detach=True)
    if not input_path.exists():
        raise BadInputError(f"{input_path}: no such file; check the --input path")
    if input_path.is_dir():
        raise BadInputError(f"{input_path}: expected a file of frames, got a directory")
    try:
        return open(input_path, encoding="utf-8", errors="replace")
    except PermissionError:
        raise BadInputError(f"{input_path}: permission denied; make the file readable") from None
    except OSError as e:
        raise BadInputError(f"{input_path}: cannot read it ({e.strerror or e})") from None


class _Borrowed:
    """A stream we read but do not own: closing it leaves it open."""

    def __init__(self, stream, detach: bool = False):
        self.stream, self.detach = stream, detach

    def __iter__(self):
        return iter(self.stream)

    def close(self) -> None:
        if self.detach:  # our text wrapper around sys.stdin's buffer: let go of the buffer, leave it open
            self.stream.detach()


def _open_output(output: Path):
    from edgernn.bundle import check_output_path
    from edgernn.runtime.stream_io import OutputOnFirstWrite

    check_output_path(output)
    try:
        return OutputOnFirstWrite(output)
    except OSError as e:
        raise BadInputError(f"{output}: cannot write here ({e.strerror or e}); choose a writable folder") from None


def read_integers(path: Path, what: str):
    """Integers from .npy, or from .csv/.txt (comma-separated, one row per window): token ids or lengths."""
    import numpy as np

    from edgernn.data.checks import load_numpy, require_file

    p = require_file(path, extensions=(".npy", ".csv", ".txt"))
    if p.suffix == ".npy":
        values = load_numpy(p, str(path), "integers")
        if not isinstance(values, np.ndarray):
            values.close()
            raise BadInputError(f"{path}: expected one array of {what} (.npy), got a .npz archive")
        if not (np.issubdtype(values.dtype, np.number) or values.dtype == np.bool_):
            raise BadInputError(f"{path}: expected {what} as integers, got values of type {values.dtype}")
    else:
        try:
            values = np.loadtxt(p, delimiter=",", ndmin=2, encoding="utf-8")
        except (ValueError, UnicodeDecodeError) as e:
            message = " ".join(str(e).split())[:120]
            raise BadInputError(f"{path}: expected {what} as integers, could not read them ({message})") from None
    if values.size == 0:
        raise BadInputError(f"{path}: no {what} in the file")
    if not np.all(np.isfinite(values)) or np.any(values != np.round(values)):
        raise BadInputError(f"{path}: expected {what} as integers, got other numbers")
    return values.astype(np.int64)
