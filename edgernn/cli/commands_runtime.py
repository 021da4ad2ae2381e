"""Device commands: run, info. Only numpy, onnxruntime and edgernn's runtime are imported."""

from __future__ import annotations

import io
import json
from pathlib import Path

import click

from edgernn.cli import cli, emit_json


def _write_records(records: list[dict], fmt_name: str) -> str:
    if fmt_name == "jsonl":
        return "".join(json.dumps(r) + "\n" for r in records)
    buf = io.StringIO()
    if not records:
        return ""
    flat = [_flatten(r) for r in records]
    keys = list(flat[0])
    buf.write(",".join(keys) + "\n")
    for row in flat:
        buf.write(",".join(str(row[k]) for k in keys) + "\n")
    return buf.getvalue()


def _flatten(record: dict) -> dict:
    out = {}
    for k, v in record.items():
        if isinstance(v, dict):
            out.update({f"p_{kk}": vv for kk, vv in v.items()})
        elif isinstance(v, list):
            out.update({f"{k}_{i}" if len(v) > 1 else k: vv for i, vv in enumerate(v)})
        else:
            out[k] = v
    return out


@cli.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--input", "input_path", type=click.Path(path_type=Path), required=True,
              help="windows to predict: .npy (N, T, F) or .csv (one flattened window per row)")
@click.option("--output", type=click.Path(path_type=Path), help="write here (.jsonl or .csv) instead of stdout")
@click.option("--format", "fmt_name", type=click.Choice(["jsonl", "csv"]), help="output format (default: from --output's suffix, else jsonl)")
@click.option("--variant", help="bundle variant to run (default onnx-window-fp32)")
@click.option("--threads", type=int, help="onnxruntime intra-op threads")
def run(model, input_path, output, fmt_name, variant, threads):
    """Predict with a bundle or a bare .onnx file, without torch.

    Inputs are in your data's units: the bundle's normalisation is applied, and outputs are
    de-normalised values, or a class label with probabilities.
    """
    from edgernn.bundle import atomic_write_text
    from edgernn.data import load_inputs
    from edgernn.runtime import load

    m = load(model, variant=variant, threads=threads)
    x = load_inputs(input_path, input_size=m.spec.input_size)
    records = m.predict(x).records()
    fmt_name = fmt_name or ("csv" if output is not None and output.suffix == ".csv" else "jsonl")
    text = _write_records(records, fmt_name)
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
    if spec:
        arch = f"{spec['num_layers']}-layer {'bidirectional ' if spec['bidirectional'] else ''}{spec['cell'].upper()}"
        click.echo(f"{arch}, hidden {spec['hidden_size']}, {spec['input_size']} features → "
                   f"{spec['head']} ({spec['output_size']} outputs){', task ' + spec['task'] if spec.get('task') else ''}")
        if spec.get("labels"):
            click.echo(f"labels: {', '.join(spec['labels'])}")
        if spec.get("window"):
            click.echo(f"trained on windows of {spec['window']} steps")
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
    for k in ("ir_version", "opset", "ops"):
        if k in d:
            click.echo(f"{k}: {d[k]}")
