"""The `edgernn evaluate --plot` figure (matplotlib, headless).

Four panels, one legend for all:

1. each variant's change against ONNX fp32 (accuracy points lost, or % MSE gained), with the
   budget as a shaded band: a bar that leaves the band fails;
2. and 3. the trade-off: the task metric against file size and against latency, with the band of
   metric values the budget accepts;
4. parity errors: how far each precision's outputs are from fp32's on the same data (histogram of
   |output − fp32 output| per element, log scale).

Variants are told apart without text on the plot: colour = precision, marker = format, hollow
marker = step graph (streamed). Names appear only on the bar chart's axis, one per row.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgernn.evaluate import REFERENCE_VARIANT, EvaluationReport
from edgernn.plots import _plt, save_figure

PRECISION_COLOURS = {"fp32": "#1f77b4", "fp16": "#2ca02c", "int8-dynamic": "#ff7f0e", "int8-static": "#d62728"}
OTHER_COLOUR = "#7f7f7f"
FORMAT_MARKERS = {"onnx": "o", "tflite": "s", "pytorch": "^"}
BAND = "#2ca02c"


def _colour(precision: str) -> str:
    return PRECISION_COLOURS.get(precision, OTHER_COLOUR)


def _accepted_metric_range(report: EvaluationReport, reference: float) -> tuple[float, float]:
    """The metric values the budget accepts, as (low, high) for the shaded band."""
    if report.head == "classification":  # accuracy in 0..1, budget in points
        return reference - report.max_drop / 100.0, np.inf
    return -np.inf, reference * (1.0 + report.max_drop / 100.0)  # MSE, budget in % of the reference


def _scatter(ax, report: EvaluationReport, key: str) -> None:
    for s in report.scores:
        x = s.size / 1024 if key == "size" else s.latency_ms
        colour = _colour(s.precision)
        hollow = s.graph == "step"
        ax.scatter(x, s.metrics[report.metric], s=46, marker=FORMAT_MARKERS.get(s.format, "D"),
                   facecolors="none" if hollow else colour, edgecolors=colour, linewidths=1.4, zorder=3)


def _band(ax, report: EvaluationReport, reference: float, orientation: str) -> None:
    lo, hi = _accepted_metric_range(report, reference)
    if orientation == "horizontal":  # metric on the y axis
        y0, y1 = ax.get_ylim()
        ax.axhspan(max(lo, y0 - abs(y1 - y0)), min(hi, y1 + abs(y1 - y0)), color=BAND, alpha=0.12, zorder=0)
        ax.axhline(reference, color="k", lw=0.8, ls=":", zorder=1)
        ax.set_ylim(y0, y1)


def _metric_limits(report: EvaluationReport, reference: float) -> tuple[float, float]:
    values = [s.metrics[report.metric] for s in report.scores]
    lo, hi = _accepted_metric_range(report, reference)
    edge = [v for v in (lo, hi) if np.isfinite(v)]
    lo_v, hi_v = min(values + edge), max(values + edge)
    pad = max(hi_v - lo_v, 0.02 * max(abs(hi_v), 1e-12)) * 0.15  # tiny differences must not look like cliffs
    return lo_v - pad, hi_v + pad


def plot_evaluation(report: EvaluationReport, path: Path) -> None:
    """Write the figure to ``path`` (.png)."""
    plt = _plt()
    fig = evaluation_figure(report)
    save_figure(fig, path)  # written whole or not at all
    plt.close(fig)


def evaluation_figure(report: EvaluationReport):
    """The matplotlib figure: axes ``[change vs fp32, parity errors, metric vs size, metric vs latency]``."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    plt = _plt()
    scores = report.scores
    reference = next(s.metrics[report.metric] for s in scores if s.variant == REFERENCE_VARIANT)
    height = max(7.5, 4.2 + 0.26 * len(scores))
    fig, axes = plt.subplots(2, 2, figsize=(13, height), dpi=110,
                             gridspec_kw={"height_ratios": [max(1.0, len(scores) / 8), 1.0]})
    (ax_drop, ax_hist), (ax_size, ax_latency) = axes

    # 1. change against fp32, with the budget band
    names = [s.variant for s in scores][::-1]
    drops = [s.drop for s in scores][::-1]
    rows = np.arange(len(names))
    ax_drop.barh(rows, drops, color=[_colour(s.precision) for s in scores][::-1],
                 edgecolor=["k" if s.passed else "red" for s in scores][::-1],
                 linewidth=[0.4 if s.passed else 2.0 for s in scores][::-1], height=0.7, zorder=3)
    for k, s in enumerate(scores[::-1]):
        if s.graph == "step":
            ax_drop.barh(k, s.drop, height=0.7, color="none", hatch="///", edgecolor="white", lw=0, zorder=4)
    span = max([abs(d) for d in drops] + [report.max_drop]) * 1.15
    ax_drop.axvspan(-span, report.max_drop, color=BAND, alpha=0.12, zorder=0)
    ax_drop.axvline(report.max_drop, color=BAND, lw=1.5, ls="--", zorder=2)
    ax_drop.axvline(0, color="k", lw=0.8, zorder=2)
    ax_drop.set_xlim(-span, span)
    ax_drop.set_yticks(rows, names, fontsize=8)
    ax_drop.set_ylim(-0.6, len(names) - 0.4)
    worse = "accuracy points lost" if report.head == "classification" else "% MSE gained"
    ax_drop.set_xlabel(f"change vs {REFERENCE_VARIANT} ({worse}; right is worse)")
    ax_drop.set_title(f"Change vs fp32 — budget {report.max_drop:g} {report.drop_unit} (shaded)", fontsize=10)
    ax_drop.grid(axis="x", alpha=0.3)

    # 2. and 3. the trade-off
    for ax, key, label in ((ax_size, "size", "file size (KiB)"), (ax_latency, "latency", "latency per window, batch 1 (ms)")):
        _scatter(ax, report, key)
        ax.set_ylim(*_metric_limits(report, reference))
        _band(ax, report, reference, "horizontal")
        ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 4), useOffset=False, useMathText=True)
        ax.set_xlabel(label)
        ax.set_ylabel(report.metric + (" (higher is better)" if report.head == "classification" else " (lower is better)"))
        ax.grid(alpha=0.3)
    ax_latency.set_xscale("log")
    ax_latency.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax_latency.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax_latency.xaxis.set_minor_formatter(NullFormatter())  # minor labels of a short log axis overlap
    ax_size.set_title(f"{report.metric} against file size", fontsize=10)
    ax_latency.set_title(f"{report.metric} against latency", fontsize=10)

    # 4. parity errors against fp32, per precision
    diffs = {s.variant: report.differences.get(s.variant) for s in scores if s.variant != REFERENCE_VARIANT}
    nonzero = np.concatenate([d[d > 0] for d in diffs.values() if d is not None and d.size] or [np.zeros(0)])
    if nonzero.size:
        bins = np.logspace(np.log10(nonzero.min()), np.log10(nonzero.max()) + 1e-9, 40)
        by_precision: dict[str, list[np.ndarray]] = {}
        for s in scores:
            d = diffs.get(s.variant)
            if d is not None and d.size:
                by_precision.setdefault(s.precision, []).append(d[d > 0])
        for precision, ds in by_precision.items():
            ax_hist.hist(np.concatenate(ds), bins=bins, histtype="step", lw=1.6, color=_colour(precision),
                         label=precision)
        ax_hist.set_xscale("log")
        ax_hist.set_yscale("log")
        ax_hist.xaxis.set_minor_formatter(NullFormatter())
    else:
        ax_hist.text(0.5, 0.5, "every variant's outputs equal fp32's", ha="center", va="center",
                     transform=ax_hist.transAxes)
    units = "probabilities" if report.head == "classification" else "data units"
    ax_hist.set_xlabel(f"|output − {REFERENCE_VARIANT} output| per element ({units})")
    ax_hist.set_ylabel("count")
    ax_hist.set_title("Parity errors against fp32, on the evaluation data", fontsize=10)
    ax_hist.grid(alpha=0.3)

    precisions = list(dict.fromkeys(s.precision for s in scores))
    formats = list(dict.fromkeys(s.format for s in scores))
    handles = [Patch(color=_colour(p), label=p) for p in precisions]
    handles += [Line2D([], [], ls="", marker=FORMAT_MARKERS.get(f, "D"), color="k", label=f) for f in formats]
    handles += [Line2D([], [], ls="", marker="o", markerfacecolor="none", color="k", label="step graph (hollow / hatched)"),
                Patch(color=BAND, alpha=0.25, label="within budget"),
                Line2D([], [], color="k", ls=":", label="fp32"),
                Patch(facecolor="white", edgecolor="red", lw=2, label="over budget")]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 7), fontsize=8, frameon=False)
    fig.suptitle(f"{report.metric} of every variant on {report.data} ({report.samples} windows)", fontsize=11)
    fig.tight_layout(rect=(0, 0.06, 1, 0.97))
    return fig
