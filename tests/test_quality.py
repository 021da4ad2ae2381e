"""`edgernn evaluate` and `edgernn compare`: task metrics per variant, the drop budget, LSTM vs GRU."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgernn.compare import matched_gru_hidden
from edgernn.datasource import DataSource
from edgernn.spec import ModelSpec
from helpers import invoke


@pytest.fixture(scope="module")
def quantized_bundle(trained_run, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("quality") / "bundle"
    result = invoke("export", trained_run, "--out", out, "--quantize", "fp16,int8-weights")
    assert result.exit_code == 0, result.output
    return out


def test_evaluate_scores_every_variant_on_the_training_test_split(quantized_bundle, trained_run, tmp_path):
    result = invoke("evaluate", quantized_bundle, "--checkpoint", trained_run, "--json", "--plot", tmp_path / "e.png",
                    "--max-drop", "1000")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    scores = {s["variant"]: s for s in report["scores"]}
    assert set(scores) == {"pytorch-fp32", *(f"onnx-{graph}-{p}" for graph in ("window", "step")
                                             for p in ("fp32", "fp16", "int8-weights"))}
    assert (tmp_path / "e.png").stat().st_size > 1000

    # an independent recomputation: the same test split, predicted through the runtime, MSE by hand
    from edgernn.runtime import load

    test = DataSource.from_dict(json.loads((trained_run / "checkpoint.json").read_text())["data"]).splits().test
    assert report["samples"] == test.n
    for name in ("onnx-window-fp32", "onnx-window-int8-weights"):
        pred = load(quantized_bundle, variant=name).predict(test.x).values
        mse = float(np.mean((pred - test.y) ** 2))
        assert scores[name]["metrics"]["mse"] == pytest.approx(mse, rel=1e-6)
    # step graphs are scored as a streaming device runs them: frame by frame over each window, from zero state
    for name in ("onnx-step-fp32", "onnx-step-int8-weights"):
        session = load(quantized_bundle, variant=name).stream(batch=test.n)
        pred = [session.step(test.x[:, t]).values for t in range(test.x.shape[1])][-1]
        mse = float(np.mean((pred - test.y) ** 2))
        assert scores[name]["metrics"]["mse"] == pytest.approx(mse, rel=1e-6)
    fp32 = scores["onnx-window-fp32"]["metrics"]["mse"]
    int8 = scores["onnx-window-int8-weights"]["metrics"]["mse"]
    assert scores["onnx-window-int8-weights"]["drop"] == pytest.approx(100 * (int8 / fp32 - 1), abs=1e-3)
    assert scores["pytorch-fp32"]["metrics"]["mse"] == pytest.approx(fp32, rel=1e-4)


def test_evaluate_exits_1_when_a_variant_drops_beyond_the_budget(quantized_bundle):
    report = json.loads(invoke("evaluate", quantized_bundle, "--json", "--max-drop", "1000").stdout)
    worst = max(s["drop"] for s in report["scores"])
    result = invoke("evaluate", quantized_bundle, "--max-drop", worst - 1e-3)
    assert result.exit_code == 1
    assert "accuracy dropped beyond the budget for:" in result.stderr
    assert "FAIL" in result.stdout


def test_evaluate_on_a_data_file_with_the_wrong_feature_count(quantized_bundle, tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((12, 20, 3), np.float32), y=np.zeros(12, np.float32))
    result = invoke("evaluate", quantized_bundle, "--data", tmp_path / "d.npz")
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: expected data with 1 features, got 3"


def test_the_gru_gets_the_closest_parameter_count():
    lstm = ModelSpec(cell="lstm", input_size=1, hidden_size=32, output_size=4, head="classification")
    h = matched_gru_hidden(lstm)
    count = lambda hidden: ModelSpec(cell="gru", input_size=1, hidden_size=hidden, output_size=4,  # noqa: E731
                                     head="classification").parameter_count()
    gap = abs(count(h) - lstm.parameter_count())
    assert gap <= abs(count(h - 1) - lstm.parameter_count()) and gap <= abs(count(h + 1) - lstm.parameter_count())
    assert h > 32  # a GRU needs more units for the same budget


@pytest.mark.slow
def test_compare_trains_both_cells_and_reports_one_table(tmp_path):
    result = invoke("compare", "--task", "sum", "--samples", "300", "--epochs", "2", "--hidden", "8",
                    "--out", tmp_path / "cmp", "--json", "--quiet")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    cells = {r["cell"]: r for r in report["results"]}
    assert set(cells) == {"lstm", "gru"}
    assert abs(cells["gru"]["parameters"] - cells["lstm"]["parameters"]) / cells["lstm"]["parameters"] < 0.1
    for r in cells.values():
        assert r["int8"] is not None and r["int8_size"] > 0  # (tiny models: int8 overhead outweighs the weights)
        assert r["window_ms"] > 0 and r["step_us"] > 0
    assert Path(report["plot"]).is_file()
