"""LSTM or GRU? Train both at the same parameter budget on the same split and measure everything.

The GRU gets the hidden size whose parameter count comes closest to the LSTM's (a GRU has three
gate blocks to the LSTM's four, so at equal hidden size it is ~25 % smaller and would be judged
on an unequal footing). Both are exported with int8 variants and scored with ``evaluate``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from edgernn.datasource import DataSource
from edgernn.evaluate import evaluate_bundle
from edgernn.plots import _plt, save_figure
from edgernn.runtime import load
from edgernn.spec import ModelSpec

INT8_PRECISION = "int8-static"


@dataclass
class CellResult:
    cell: str
    hidden_size: int
    parameters: int
    train_seconds: float
    metric: str
    fp32: float
    int8: float | None
    fp32_size: int
    int8_size: int | None
    window_ms: float
    step_us: float | None


@dataclass
class ComparisonReport:
    data: str
    head: str
    metric: str
    results: list[CellResult] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def matched_gru_hidden(lstm: ModelSpec) -> int:
    """The GRU hidden size whose parameter count is closest to the LSTM's."""
    candidates = range(1, 4 * lstm.hidden_size)
    count = lambda h: replace(lstm, cell="gru", hidden_size=h).parameter_count()  # noqa: E731
    return min(candidates, key=lambda h: abs(count(h) - lstm.parameter_count()))


def step_latency_us(bundle: Path, variant: str, repeat: int = 2000) -> float | None:
    model = load(bundle, variant=variant, threads=1)
    try:
        session = model.stream(batch=1)
    except Exception:  # bidirectional models have no step graph
        return None
    x_t = np.zeros((1, model.spec.input_size), np.float32)
    for _ in range(100):
        session.step_raw(x_t)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        session.step_raw(x_t)
        times.append(time.perf_counter() - start)
    return 1e6 * float(np.median(times))


def compare_cells(source: DataSource, config, out: Path, *, progress: bool = True) -> ComparisonReport:
    """Train an LSTM (``config``) and a parameter-matched GRU, export with int8, and score both."""
    from edgernn.export import export_checkpoint
    from edgernn.nn.train import train

    out = Path(out)
    report = None
    lstm_spec = None
    for cell in ("lstm", "gru"):
        cfg = replace(config, cell=cell)
        if cell == "gru":
            cfg = replace(cfg, hidden_size=matched_gru_hidden(lstm_spec))
        run_dir, bundle = out / f"run-{cell}", out / f"bundle-{cell}"
        result = train(source, cfg, run_dir, progress=progress)
        lstm_spec = lstm_spec or result.spec
        export_checkpoint(run_dir, bundle, quantize=(INT8_PRECISION,))
        ev = evaluate_bundle(bundle)
        scores = {s.variant: s for s in ev.scores}
        fp32 = scores["onnx-window-fp32"]
        int8 = scores.get(f"onnx-window-{INT8_PRECISION}")
        if report is None:
            report = ComparisonReport(ev.data, ev.head, ev.metric)
        report.results.append(CellResult(
            cell=cell, hidden_size=cfg.hidden_size, parameters=result.spec.parameter_count(),
            train_seconds=result.metrics["train_seconds"], metric=ev.metric,
            fp32=fp32.metrics[ev.metric], int8=int8.metrics[ev.metric] if int8 else None,
            fp32_size=fp32.size, int8_size=int8.size if int8 else None,
            window_ms=fp32.latency_ms, step_us=step_latency_us(bundle, "onnx-window-fp32"),
        ))
    return report


def plot_comparison(report: ComparisonReport, path: Path) -> None:
    plt = _plt()
    panels = [
        (f"test {report.metric}", ("fp32", "int8"), lambda r: [r.fp32, r.int8 or 0.0]),
        ("file size (KiB)", ("fp32", "int8"), lambda r: [r.fp32_size / 1024, (r.int8_size or 0) / 1024]),
        ("fp32 latency, batch 1 (µs)", ("whole window", "one stream step"),
         lambda r: [r.window_ms * 1000, r.step_us or 0.0]),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.4), dpi=110)
    for ax, (title, legend, values) in zip(axes, panels):
        for k, r in enumerate(report.results):
            bars = ax.bar([k * 3, k * 3 + 1], values(r), color=["C0", "C1"], alpha=0.85)
            if k == 0:
                bars[0].set_label(legend[0])
                bars[1].set_label(legend[1])
        ax.legend(fontsize=7)
        ax.set_xticks([k * 3 + 0.5 for k in range(len(report.results))], [r.cell.upper() for r in report.results])
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle(f"LSTM vs GRU on {report.data}")
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
