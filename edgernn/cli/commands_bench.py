"""`edgernn bench`: prints the figures of ``edgernn.bench``. Imports no torch unless --checkpoint is given."""

from __future__ import annotations

from pathlib import Path

import click

from edgernn.cli.app import cli, emit_json, stderr_is_tty
from edgernn.cli.options import LENGTH, SIZE, THREADS, Bounded


def _table(title: str, header: list[str], rows: list[list[str]]) -> str:
    """A plain aligned table: first column left-aligned, the others right-aligned."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [title]
    for r in [header, *rows]:
        cells = [r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:])]
        lines.append("  " + "  ".join(cells).rstrip())
    return "\n".join(lines)


def _us(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.1f}" if v < 1000 else f"{v:,.0f}"


def _ratio(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}×"


def _mib(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f} MiB"


def _kib(v: int | None) -> str:
    return "-" if v is None else f"{v / 1024:.1f} KiB"


def _window_row(name: str, size, w, vs1=None, vsb=None, with_torch=False) -> list[str]:
    row = [name, _kib(size), _us(w.batch1.p50_us), _us(w.batch1.p90_us), _us(w.batch1.p99_us),
           _us(w.batched.p50_us), _us(w.batched.p90_us), _us(w.batched.p99_us), f"{w.windows_per_s:,.0f}"]
    return row + ([_ratio(vs1), _ratio(vsb)] if with_torch else [])


def render(report) -> str:
    s, m = report.settings, report.model
    out = []
    if m:
        arch = f"{m['num_layers']}-layer {'bidirectional ' if m['bidirectional'] else ''}{m['cell'].upper()}"
        out.append(f"{report.bundle}: {arch}, hidden {m['hidden_size']}, {m['input_size']} features, "
                   f"{m['parameters']:,} parameters")
    windows = [r for r in report.variants if r.window is not None]
    length = windows[0].window.length if windows else s.length
    out.append(f"{s.threads} thread{'s' if s.threads != 1 else ''}"
               + (f", windows of {length} steps, batch 1 and {s.batch}" if windows else "")
               + f"; {report.machine.get('cpu', '?')}, onnxruntime {report.machine.get('onnxruntime', '?')}")
    torch = report.pytorch
    if windows:
        header = ["window graph", "size", "b=1 p50 µs", "p90", "p99", f"b={s.batch} p50 µs", "p90", "p99", "windows/s"]
        header += ["vs torch b=1", f"b={s.batch}"] if torch else []
        rows = [_window_row(r.name, r.size_bytes, r.window, r.vs_pytorch, r.vs_pytorch_batched, bool(torch))
                for r in windows]
        if torch:
            rows.append(_window_row(f"pytorch {torch['version']} eager", None, torch["window"], with_torch=True))
        out += ["", _table("Windows (Model.window, raw graph)", header, rows)]
    steps = [r for r in report.variants if r.step is not None]
    exported = report.torch_onnx_export or {}
    if steps:
        header = ["step graph", "size", "step_raw p50 µs", "p90", "p99", "step() p50", "ort.run p50", "steps/s"]
        header += ["vs torch", "vs plain export"] if torch else []
        rows = []
        for r in steps:
            st = r.step
            rows.append([r.name, _kib(r.size_bytes), _us(st.raw.p50_us), _us(st.raw.p90_us), _us(st.raw.p99_us),
                         _us(st.api.p50_us if st.api else None),
                         _us(st.onnxruntime.p50_us if st.onnxruntime else None), f"{st.steps_per_s:,.0f}"]
                        + ([_ratio(r.vs_pytorch), _ratio(r.vs_torch_onnx_export)] if torch else []))
        for name, lat, size in ((f"pytorch {torch['version']} eager" if torch else "", (torch or {}).get("step"), None),
                                ("plain torch.onnx.export", exported.get("step"), exported.get("size_bytes"))):
            if lat is not None:
                rows.append([name, _kib(size), _us(lat.p50_us), _us(lat.p90_us), _us(lat.p99_us), "-", "-",
                             f"{lat.per_second():,.0f}", "-", "-"])
        out += ["", _table("Streaming, batch 1 (StreamSession.step_raw, state carried)", header, rows)]
        if "skipped" in exported:
            out.append(f"  plain torch.onnx.export: skipped ({exported['skipped']})")
    colds = [(f"{r.name} (Python API)", r.cold_start) for r in report.variants if r.cold_start]
    if report.cli_cold_start:
        colds.append(("edgernn run (CLI)", report.cli_cold_start))
    if colds:
        header = ["process", "cold start", "bare script", "ratio", "peak RSS", "bare RSS"]
        rows = [[name, f"{c.seconds * 1e3:.0f} ms", f"{c.bare_seconds * 1e3:.0f} ms", _ratio(c.ratio_to_bare),
                 _mib(c.peak_rss_mib), _mib(c.bare_peak_rss_mib)] for name, c in colds]
        title = (f"Cold start: fresh process, spawn to first output, median of {s.cold_runs} "
                 "(bare script: import onnxruntime, or the TFLite interpreter for .tflite, open the file, run once)")
        out += ["", _table(title, header, rows)]
    out += [f"note: {n}" for n in report.notes]
    return "\n".join(out)


@cli.command()
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--variant", "variants", multiple=True, help="variant to benchmark (repeatable; default: all)")
@click.option("--threads", type=THREADS, default=1, show_default=True, help="onnxruntime (and torch) intra-op threads")
@click.option("--batch", type=SIZE, default=64, show_default=True, help="the larger window batch")
@click.option("--length", type=LENGTH, help="steps per window (default: the model's training window)")
@click.option("--repeat", type=Bounded(int, 1, 1_000_000), help="timed calls per figure (default: as many as fit ~0.3 s)")
@click.option("--cold-runs", type=Bounded(int, 0, 100), default=3, show_default=True,
              help="fresh processes per cold start figure (median); 0 skips cold start")
@click.option("--checkpoint", type=click.Path(path_type=Path),
              help="also time PyTorch eager and a plain torch.onnx.export on these weights (imports torch)")
@click.option("--json", "as_json", is_flag=True, help="print the figures as JSON")
@click.option("--input", "input_path", type=click.Path(path_type=Path),
              help="an ONNX file edgernn did not write: its inputs by name (.npz); default: float inputs drawn "
                   "N(0, 1), unknown axes 4")
def bench(bundle, variants, threads, batch, length, repeat, cold_runs, checkpoint, as_json, input_path):
    """Latency, throughput, cold start and peak memory of each variant of a bundle.

    Window graphs: latency at batch 1 and --batch (p50/p90/p99) and windows per second. Step graphs:
    the streaming step through the Python API. Cold start: a fresh process from spawn to its first
    prediction, beside a bare script that imports onnxruntime (or the TFLite interpreter) and runs the
    same file. Timings are
    noisy: compare figures from the same run.
    """
    from edgernn.bench import BenchSettings, bench as run_bench

    if Path(bundle).suffix == ".onnx" and Path(bundle).is_file():
        from edgernn.runtime.graph import GraphModel

        graph = GraphModel(bundle, threads)
        if not graph.edgernn:
            _bench_graph(graph, input_path, threads, repeat, as_json)
            return

    settings = BenchSettings(threads=threads, batch=batch, length=length, repeat=repeat, cold_runs=cold_runs)
    progress = (lambda message: click.echo(message + " …", err=True)) if stderr_is_tty() and not as_json else (lambda m: None)
    report = run_bench(bundle, variants=variants, settings=settings, checkpoint=checkpoint, progress=progress)
    if as_json:
        emit_json(report.to_dict())
    else:
        click.echo(render(report))


def _bench_graph(graph, input_path, threads: int, repeat, as_json: bool) -> None:
    """Latency of one ``session.run`` on an ONNX file edgernn did not write, on fixed feeds."""
    from edgernn.bench import machine_info, measure
    from edgernn.runtime.graph import draw_feeds

    feeds = graph.read_feeds(input_path) if input_path else draw_feeds(graph.inputs)
    lat = measure(lambda: graph.run(feeds), repeat)
    shapes = {k: list(v.shape) for k, v in feeds.items()}
    if as_json:
        emit_json({"file": str(graph.path), "threads": threads, "inputs": shapes, "drawn": input_path is None,
                   "latency_us": {"p50": lat.p50_us, "p90": lat.p90_us, "p99": lat.p99_us, "mean": lat.mean_us,
                                  "n": lat.n}, "runs_per_s": lat.per_second(), "machine": machine_info()})
        return
    m = machine_info()
    click.echo(f"{graph.path}: {threads} thread{'s' if threads != 1 else ''}; {m['cpu']}, onnxruntime {m['onnxruntime']}")
    click.echo("inputs " + ("drawn N(0, 1): " if input_path is None else "from " + str(input_path) + ": ")
               + ", ".join(f"{k} {tuple(v)}" for k, v in shapes.items()))
    click.echo(_table("session.run, whole graph", ["graph", "p50 µs", "p90", "p99", "runs/s"],
                      [[graph.path.name, _us(lat.p50_us), _us(lat.p90_us), _us(lat.p99_us),
                        f"{lat.per_second():,.0f}"]]))
