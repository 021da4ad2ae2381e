"""The evaluate figure and the confusion matrix: what they show, and that their labels do not overlap."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from edgernn.evaluate import REFERENCE_VARIANT, EvaluationReport, VariantScore  # noqa: E402
from edgernn.plots_evaluate import evaluation_figure, plot_evaluation  # noqa: E402

PRECISIONS = ("fp32", "fp16", "int8-dynamic", "int8-static")


def synthetic_report(head: str = "classification") -> EvaluationReport:
    metric = "accuracy" if head == "classification" else "mse"
    report = EvaluationReport("b", "test data", head, metric, "accuracy points" if head == "classification" else "% MSE",
                              1.0, 200)
    rng = np.random.default_rng(0)
    drops = iter(np.linspace(-0.5, 1.5, 16))
    for fmt in ("onnx", "tflite"):
        for precision in PRECISIONS:
            for graph in ("window", "step"):
                name = f"{fmt}-{graph}-{precision}"
                drop = 0.0 if name == REFERENCE_VARIANT else float(next(drops))
                value = 0.9 - drop / 100 if head == "classification" else 1e-3 * (1 + drop / 100)
                report.scores.append(VariantScore(name, precision, fmt, {metric: value}, 8000 + 900 * len(report.scores),
                                                  0.02 * (1 + len(report.scores)), drop=drop, passed=drop <= 1.0,
                                                  graph=graph))
                report.differences[name] = np.zeros(50) if name == REFERENCE_VARIANT else \
                    np.abs(rng.normal(0, 10.0 ** -(2 + PRECISIONS.index(precision)), 50))
    return report


def _overlaps(texts) -> list[tuple[str, str]]:
    boxes = [(t.get_text(), t.get_window_extent()) for t in texts if t.get_text() and t.get_visible()]
    return [(a, b) for i, (a, box_a) in enumerate(boxes) for b, box_b in boxes[i + 1 :] if box_a.overlaps(box_b)]


@pytest.mark.parametrize("head", ["classification", "regression"])
def test_evaluation_figure_shows_every_variant_the_budget_and_a_legend(head):
    report = synthetic_report(head)
    fig = evaluation_figure(report)
    fig.canvas.draw()
    ax_drop, ax_hist, ax_size, ax_latency = fig.axes
    names = [t.get_text() for t in ax_drop.get_yticklabels()]
    assert names == [s.variant for s in report.scores][::-1]  # one row each, named on the axis only
    drawn = sorted(round(float(p.get_width()), 6) for p in ax_drop.patches if p.get_height() == 0.7
                   and p.get_facecolor()[3] > 0)
    assert drawn == sorted(round(s.drop, 6) for s in report.scores)
    budget_lines = [ln for ln in ax_drop.get_lines() if list(ln.get_xdata()) == [1.0, 1.0]]
    assert budget_lines, "a line at the budget"
    legend = {t.get_text() for t in fig.legends[0].get_texts()}
    assert {*PRECISIONS, "onnx", "tflite", "within budget", "over budget"} <= legend
    # the histogram has one curve per precision that differs from fp32's outputs
    assert {p.get_label() for p in ax_hist.patches} >= set(PRECISIONS[1:])
    for ax in fig.axes:
        assert not _overlaps(ax.get_yticklabels()), ax.get_title()
        assert not _overlaps(ax.get_xticklabels()), ax.get_title()
    assert not [t for ax in fig.axes for t in ax.texts]  # no annotations to collide
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_plot_evaluation_writes_a_png(tmp_path):
    plot_evaluation(synthetic_report(), tmp_path / "e.png")
    assert (tmp_path / "e.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_confusion_matrix_counts_shares_and_readable_text(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    from edgernn import plots

    kept = {}
    monkeypatch.setattr(plt, "close", lambda fig: kept.setdefault("fig", fig))
    y_true = np.array([0] * 10 + [1] * 10 + [2] * 4)
    y_pred = np.array([0] * 9 + [1] + [1] * 10 + [0, 2, 2, 2])
    plots.confusion(y_true, y_pred, ("low", "mid", "high"), tmp_path / "c.png")
    ax = kept["fig"].axes[0]
    cells = {(round(t.get_position()[1]), round(t.get_position()[0])): t for t in ax.texts}
    assert cells[(0, 0)].get_text() == "9\n90%" and cells[(0, 1)].get_text() == "1\n10%"
    assert cells[(2, 2)].get_text() == "3\n75%" and cells[(2, 0)].get_text() == "1\n25%"
    assert cells[(0, 0)].get_color() == "white" and cells[(0, 1)].get_color() == "black"
    assert "accuracy 91.7%" in ax.get_title()
    kept["fig"].canvas.draw()
    assert not _overlaps(ax.get_xticklabels()) and not _overlaps(ax.get_yticklabels())
    assert (tmp_path / "c.png").stat().st_size > 1000
