#!/usr/bin/env python
"""Benchmark the built-in zoo and write ``docs/bench.md`` and ``docs/bench_latency.png``.

The zoo: the built-in tasks (sum, sine, bands) × (LSTM, GRU), trained for a few epochs, and the
reference model of the streaming targets — a 2-layer, hidden-64 LSTM and GRU on 8 features, with
random weights (latency does not depend on what the weights learned). Each is exported to a bundle
and benchmarked with ``edgernn.bench`` in this process, against PyTorch eager and a plain
``torch.onnx.export`` of the same weights. Runs and bundles are kept in ``--work`` and reused.

    python tools/bench_zoo.py                       # a few minutes
    python tools/bench_zoo.py --only ref-lstm,ref-gru --cold-runs 5
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TASKS = ("sum", "sine", "bands")
CELLS = ("lstm", "gru")


@dataclass(frozen=True)
class ZooModel:
    name: str
    cell: str
    task: str | None  # None: the reference model, random weights


ZOO = [ZooModel(f"{task}-{cell}", cell, task) for task in TASKS for cell in CELLS] + [
    ZooModel(f"ref-{cell}", cell, None) for cell in CELLS
]
REFERENCE = dict(input_size=8, hidden_size=64, num_layers=2, window=50)


def prepare(model: ZooModel, work: Path, epochs: int, retrain: bool, quantize: tuple[str, ...] = ()) -> tuple[Path, Path]:
    """The model's run folder (checkpoint) and bundle, made unless already in ``work``."""
    from edgernn.checkpoint import save_checkpoint
    from edgernn.export import export_checkpoint

    run, bundle = work / "runs" / model.name, work / "bundles" / model.name
    if retrain or not (run / "checkpoint.json").is_file():
        if model.task is None:
            from edgernn.nn import build_model
            from edgernn.spec import ModelSpec

            spec = ModelSpec(cell=model.cell, task="reference (random weights)", **REFERENCE)
            weights = {k: v.detach().numpy() for k, v in build_model(spec, seed=0).state_dict().items()}
            save_checkpoint(run, {"spec": spec.to_dict()}, weights)
        else:
            from edgernn.datasource import DataSource
            from edgernn.nn.train import TrainConfig, train

            print(f"  training {model.name} ({epochs} epochs)", file=sys.stderr)
            train(DataSource(task=model.task), TrainConfig(cell=model.cell, epochs=epochs), run, progress=False)
    if retrain or not (bundle / "manifest.json").is_file() or not _has(bundle, quantize):
        export_checkpoint(run, bundle, quantize=quantize)
    return run, bundle


def _has(bundle: Path, quantize: tuple[str, ...]) -> bool:
    """Whether the bundle already holds (or records as not written) every precision asked."""
    from edgernn.bundle import read_manifest

    manifest = read_manifest(bundle)
    done = {v.precision for v in manifest.variants} | {n["variant"].split("-*-", 1)[-1] for n in manifest.not_written}
    return set(quantize) <= done


# --- docs/bench.md -------------------------------------------------------------------------------


def _f(v, digits: int = 1, unit: str = "") -> str:
    if v is None:
        return "–"
    return (f"{v:,.{digits}f}" if v < 10_000 else f"{v:,.0f}") + unit


def _cold(r) -> list[str]:
    c = r.cold_start
    if c is None:
        return ["–", "–", "–"]
    return [f"{c.seconds * 1e3:.0f} ms", f"{c.ratio_to_bare:.2f}×", _f(c.peak_rss_mib, 0, " MiB")]


def _table(header: list[str], rows: list[list[str]], text_columns: int = 1) -> list[str]:
    """A markdown table: the first ``text_columns`` left-aligned, the figures after them right-aligned."""
    align = ["---" if i < text_columns else "---:" for i in range(len(header))]
    return ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|", *("| " + " | ".join(r) + " |" for r in rows)]


def _arch(report) -> str:
    m = report.model
    features = m["input_size"]
    return f"{m['num_layers']}×{m['hidden_size']} {m['cell'].upper()}, {features} feature{'s' if features > 1 else ''}"


def _shown(path: Path) -> str:
    """``path`` relative to the repository when inside it, for commands readers can paste."""
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def _target_checks(refs: dict) -> list[str]:
    """One line per target of issue 3: what each reference model reached, and whether all met it."""

    def line(target: str, reached: list[tuple[str, float, str]], ok) -> str:
        if not reached:
            return f"- {target}: not measured"
        met = all(ok(value) for _, value, _ in reached)
        return f"- {target}: " + ", ".join(f"{name} {text}" for name, _, text in reached) + \
            (" — met" if met else " — not met")

    steps = {n: next(v for v in r.variants if v.step is not None) for n, r in refs.items()
             if any(v.step is not None for v in r.variants)}  # the fp32 step, listed first
    colds = {n: r.cli_cold_start for n, r in refs.items() if r.cli_cold_start}
    return [
        line("streaming step ≤ 15 µs p50", [(n, v.step.raw.p50_us, f"{v.step.raw.p50_us:.1f} µs")
                                             for n, v in steps.items()], lambda x: x <= 15),
        line("≥ 1.5× faster than a plain torch.onnx.export per step (issue 12)",
             [(n, v.vs_torch_onnx_export, f"{v.vs_torch_onnx_export:.2f}×") for n, v in steps.items()
              if v.vs_torch_onnx_export], lambda x: x >= 1.5),
        line("about 3× faster than a plain torch.onnx.export per step",
             [(n, v.vs_torch_onnx_export, f"{v.vs_torch_onnx_export:.2f}×") for n, v in steps.items()
              if v.vs_torch_onnx_export], lambda x: x >= 2.5),
        line("over 20× faster than PyTorch eager per step",
             [(n, v.vs_pytorch, f"{v.vs_pytorch:.1f}×") for n, v in steps.items() if v.vs_pytorch], lambda x: x > 20),
        line("`edgernn run` cold start within 1.3× of the bare script",
             [(n, c.ratio_to_bare, f"{c.ratio_to_bare:.2f}× ({c.seconds * 1e3:.0f} vs {c.bare_seconds * 1e3:.0f} ms)")
              for n, c in colds.items()], lambda x: x <= 1.3),
        line("peak RSS ≤ 70 MiB", [(n, c.peak_rss_mib, f"{c.peak_rss_mib:.0f} MiB") for n, c in colds.items()
                                   if c.peak_rss_mib], lambda x: x <= 70),
    ]


def markdown(reports: dict, args, machine: dict, seconds: float) -> str:
    first = next(iter(reports.values()))
    s = first.settings
    torch_version = next((r.pytorch["version"] for r in reports.values() if r.pytorch), "?")
    lines = [
        "# edgernn benchmarks",
        "",
        f"Measured by `python tools/bench_zoo.py` on {datetime.now(timezone.utc):%Y-%m-%d}: {machine['cpu']} "
        f"({machine['cpu_count']} logical CPUs), {machine['platform']}, Python {machine['python']}, "
        f"onnxruntime {machine['onnxruntime']}, torch {torch_version}; **{s.threads} thread**, "
        f"larger batch {s.batch}, in {seconds:.0f} s. Latency in µs, p50 unless said; the ratios are "
        "speed-ups at p50 (above 1: edgernn is faster). Timings on a shared machine are noisy: compare "
        "figures of the same run, and rerun for your own device.",
        "",
        "- **step**: one frame through the Python API, `Model.stream().step_raw(x_t)`, state carried "
        "(`step()` adds normalisation and post-processing; `ort.run` is onnxruntime alone on the same graph);",
        "- **PyTorch**: eager, the checkpoint's model; a step is its RNN on a `(1, 1, F)` slice carrying the state, then the head;",
        "- **plain export**: `torch.onnx.export(..., dynamo=False)` of that one-step module (ONNX LSTM/GRU op), "
        "stepped in onnxruntime;",
        "- **cold start**: a fresh `python` that imports `edgernn.runtime`, loads the variant and predicts once, "
        "from spawn to first output (median); **× bare** is its ratio to a script that imports onnxruntime, "
        "opens the same file and runs it once; **RSS** is that process's peak (VmHWM).",
    ]
    refs = {k: r for k, r in reports.items() if k.startswith("ref-") and r.variants}
    if refs:
        lines += ["", "## Reference model: 2-layer, hidden-64 LSTM and GRU, 8 features (targets of issue 3)", ""]
        rows = []
        for name, r in refs.items():
            step = next((v for v in r.variants if v.step is not None), None)
            if step is None:
                continue
            torch_step = (r.pytorch or {}).get("step")
            plain = (r.torch_onnx_export or {}).get("step")
            cli = r.cli_cold_start
            rows.append([name, _f(step.step.raw.p50_us), _f(step.step.raw.p99_us),
                         _f(plain.p50_us if plain else None), _f(torch_step.p50_us if torch_step else None),
                         _f(step.vs_torch_onnx_export, 2, "×"), _f(step.vs_pytorch, 1, "×"),
                         f"{cli.seconds * 1e3:.0f} ms" if cli else "–", f"{cli.ratio_to_bare:.2f}×" if cli else "–",
                         _f(cli.peak_rss_mib if cli else None, 0, " MiB")])
        lines += _table(["model", "step p50", "step p99", "plain export p50", "PyTorch p50", "vs plain export",
                         "vs PyTorch", "`edgernn run` cold start", "× bare", "peak RSS"], rows)
        work = _shown(args.work)
        lines += ["", "Against the targets of issue 3 (this run):", "", *_target_checks(refs), "",
                  f"Reproduce a row: `edgernn bench {work}/bundles/ref-lstm --checkpoint {work}/runs/ref-lstm`."]

    lines += ["", "## Windows (`Model.window`, raw graph)", ""]
    rows = []
    for name, r in reports.items():
        for v in r.variants:
            if v.window is None:
                continue
            w = v.window
            rows.append([name, _arch(r), v.name, _f(v.size_bytes / 1024, 1, " KiB"), str(w.length),
                         _f(w.batch1.p50_us), _f(w.batch1.p99_us), _f(w.batched.p50_us), _f(w.windows_per_s, 0),
                         _f(v.vs_pytorch, 2, "×"), _f(v.vs_pytorch_batched, 2, "×"), *_cold(v)])
    lines += _table(["model", "architecture", "variant", "size", "T", "b=1 p50", "b=1 p99", f"b={s.batch} p50",
                     "windows/s", "vs PyTorch b=1", f"b={s.batch}", "cold start", "× bare", "RSS"], rows, 3)

    lines += ["", "## Streaming steps (`StreamSession.step_raw`, batch 1)", ""]
    rows = []
    for name, r in reports.items():
        for v in r.variants:
            if v.step is None:
                continue
            st = v.step
            rows.append([name, v.name, _f(v.size_bytes / 1024, 1, " KiB"), _f(st.raw.p50_us), _f(st.raw.p99_us),
                         _f(st.api.p50_us if st.api else None), _f(st.onnxruntime.p50_us if st.onnxruntime else None),
                         _f(v.vs_torch_onnx_export, 2, "×"), _f(v.vs_pytorch, 1, "×"), *_cold(v)])
    lines += _table(["model", "variant", "size", "step p50", "step p99", "step() p50", "ort.run p50",
                     "vs plain export", "vs PyTorch", "cold start", "× bare", "RSS"], rows, 2)
    notes = [f"{name}: {n}" for name, r in reports.items() for n in r.notes]
    if notes:
        lines += ["", *(f"- note: {n}" for n in notes)]
    lines += ["", "![latency per model](bench_latency.png)", ""]
    return "\n".join(lines)


# --- docs/bench_latency.png ----------------------------------------------------------------------


def plot(reports: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.ticker import FuncFormatter, NullFormatter

    names = [n for n, r in reports.items() if r.variants]
    fig, (ax_step, ax_window) = plt.subplots(1, 2, figsize=(12, 0.5 * len(names) + 2.4), sharey=True)
    y = np.arange(len(names))

    def dots(ax, series, title):
        """One row per model, one marker per implementation: a log axis with no bar to mislead."""
        for label, values, color, marker in series:
            vals = np.array([np.nan if v is None else v for v in values], float)
            ax.plot(vals, y, marker, color=color, label=label, markersize=8, linestyle="none")
            if marker == "o":  # label edgernn's own figures
                for yi, v in zip(y, vals):
                    if np.isfinite(v):
                        ax.annotate(f"{v:.0f}", (v, yi), textcoords="offset points", xytext=(0, 7),
                                    ha="center", fontsize=7, color=color)
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.margins(x=0.08, y=0.12)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("µs per call (p50, log scale)")
        ax.grid(axis="x", which="both", alpha=0.3)
        ax.grid(axis="y", alpha=0.15)
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.12 - 0.6 / (len(names) + 3)), ncol=3,
                  frameon=False)

    def figure(name, graph, pick):
        r = reports[name]
        v = next((v for v in r.variants if getattr(v, graph) is not None and "fp32" in v.name), None)
        return pick(r, v)

    dots(ax_step, [
        ("edgernn step graph (step_raw)", [figure(n, "step", lambda r, v: v and v.step.raw.p50_us) for n in names],
         "#1f77b4", "o"),
        ("plain torch.onnx.export", [figure(n, "step", lambda r, v: (r.torch_onnx_export or {}).get("step")
                                            and r.torch_onnx_export["step"].p50_us) for n in names], "#ff7f0e", "s"),
        ("PyTorch eager", [figure(n, "step", lambda r, v: (r.pytorch or {}).get("step")
                                  and r.pytorch["step"].p50_us) for n in names], "#555555", "^"),
    ], "Streaming: one step, batch 1, state carried")
    dots(ax_window, [
        ("edgernn window graph", [figure(n, "window", lambda r, v: v and v.window.batch1.p50_us) for n in names],
         "#1f77b4", "o"),
        ("PyTorch eager", [figure(n, "window", lambda r, v: r.pytorch and r.pytorch["window"].batch1.p50_us)
                           for n in names], "#555555", "^"),
    ], "Whole window, batch 1 (T = training window)")
    ax_step.set_yticks(y, names)
    ax_step.invert_yaxis()
    threads = next(iter(reports.values())).settings.threads
    fig.suptitle(f"edgernn latency per model ({threads} thread, lower is better)", fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=REPO / "build" / "bench_zoo", help="runs and bundles (reused)")
    parser.add_argument("--docs", type=Path, default=REPO / "docs", help="where bench.md and bench_latency.png go")
    parser.add_argument("--epochs", type=int, default=3, help="training epochs for the task models")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeat", type=int, help="timed calls per figure (default: ~0.3 s worth)")
    parser.add_argument("--cold-runs", type=int, default=3)
    parser.add_argument("--only", help="comma-separated model names: " + ", ".join(m.name for m in ZOO))
    parser.add_argument("--retrain", action="store_true", help="train and export again even if --work has them")
    parser.add_argument("--quantize", default="int8-weights,int8-dynamic",
                        help="precisions exported beside fp32 (default: int8-weights,int8-dynamic)")
    args = parser.parse_args()

    from edgernn.bench import BenchSettings, bench, machine_info

    chosen = [m for m in ZOO if not args.only or m.name in args.only.split(",")]
    if not chosen:
        parser.error(f"--only matches no model; the zoo has: {', '.join(m.name for m in ZOO)}")
    settings = BenchSettings(threads=args.threads, batch=args.batch, repeat=args.repeat, cold_runs=args.cold_runs)
    started = time.perf_counter()
    reports = {}
    for model in chosen:
        print(f"{model.name}", file=sys.stderr)
        run, bundle = prepare(model, args.work, args.epochs, args.retrain,
                              tuple(p for p in args.quantize.split(",") if p))
        reports[model.name] = bench(bundle, settings=settings, checkpoint=run,
                                    progress=lambda m: print(f"  {m}", file=sys.stderr))
    seconds = time.perf_counter() - started
    machine = machine_info()
    args.docs.mkdir(parents=True, exist_ok=True)
    (args.docs / "bench.md").write_text(markdown(reports, args, machine, seconds), encoding="utf-8")
    plot(reports, args.docs / "bench_latency.png")
    (args.docs / "bench.json").write_text(json.dumps(
        {"machine": machine, "python": platform.python_version(), "seconds": round(seconds, 1),
         "models": {k: r.to_dict() for k, r in reports.items()}}, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.docs / 'bench.md'}, {args.docs / 'bench_latency.png'}, {args.docs / 'bench.json'} "
          f"in {seconds:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
