"""Forecasting a forecaster would accept (issue 11, point 7): persistence and seasonal-naive
baselines beside the model, a plain verdict when it does not beat persistence, and transforms
(change from the last value, log, per-window scaling) kept in the spec and applied by the runtime,
so the device feeds raw units and gets raw units back."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgernn.metrics import forecast_baselines, verdict
from helpers import invoke


def ok(result):
    assert result.exit_code == 0, f"exit {result.exit_code}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    return result


def monthly(path, months=144, seed=0):
    """A trending, seasonal monthly series with a date column (like the airline data)."""
    rng = np.random.default_rng(seed)
    t = np.arange(months)
    values = (100 + 2.5 * t) * (1 + 0.15 * np.sin(2 * np.pi * t / 12)) + rng.normal(0, 2, months)
    stamps = [f"{1949 + m // 12}-{m % 12 + 1:02d}" for m in t]
    path.write_text("Month,Value\n" + "".join(f"{s},{v:.3f}\n" for s, v in zip(stamps, values)))
    return path, values


def test_baselines_are_persistence_and_seasonal_naive():
    series = np.sin(2 * np.pi * np.arange(60) / 12) + np.arange(60) * 0.0
    x = np.stack([series[s : s + 24] for s in range(30)])[:, :, None]  # (30, 24, 1)
    for horizon in (1, 3):
        y = np.array([series[s + 23 + horizon] for s in range(30)])[:, None]
        b = forecast_baselines(x, y, horizon=horizon, season=12)
        assert b["persistence"]["mse"] == pytest.approx(np.mean((y[:, 0] - x[:, -1, 0]) ** 2))
        assert b["seasonal naive (m=12)"]["mse"] == pytest.approx(0.0, abs=1e-20)  # a pure 12-step season


def test_verdict_says_plainly_when_the_model_does_not_beat_persistence():
    baselines = {"persistence": {"mse": 2.0}}
    assert verdict({"mse": 3.0}, baselines).startswith("the model does NOT beat persistence (last value): MSE 3 vs 2")
    assert verdict({"mse": 1.0}, baselines).startswith("the model beats persistence: MSE 1 vs 2 (0.50×)")
    assert verdict({"mse": 0.5}, {"persistence": {"mse": 0.0}}).startswith(
        "the model does NOT beat persistence (last value): MSE 0.5 vs 0 (persistence is exact on this data)")


def test_train_and_evaluate_report_baselines_and_the_verdict(tmp_path):
    rng = np.random.default_rng(1)
    walk = np.cumsum(rng.standard_normal(300))  # a random walk: persistence is the best forecast there is
    path = tmp_path / "walk.csv"
    path.write_text("".join(f"{v:.4f}\n" for v in walk))
    result = ok(invoke("train", "--data", path, "--head", "forecast", "--window", 16, "--hidden", 4, "--epochs", 1,
                       "--season", 7, "--out", tmp_path / "run", "--quiet"))
    assert "baseline (persistence):" in result.stdout and "baseline (seasonal naive (m=7)):" in result.stdout
    assert "the model does NOT beat persistence (last value)" in result.stdout
    ok(invoke("export", tmp_path / "run", "--out", tmp_path / "bundle"))
    report = json.loads(ok(invoke("evaluate", tmp_path / "bundle", "--json")).stdout)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert report["baselines"]["persistence"]["mse"] == pytest.approx(metrics["baselines"]["persistence"]["mse"])
    assert report["verdict"].startswith("the model does NOT beat persistence")


@pytest.fixture(scope="module")
def transformed(tmp_path_factory):
    root = tmp_path_factory.mktemp("transformed")
    path, values = monthly(root / "monthly.csv")
    ok(invoke("train", "--data", path, "--window", 24, "--hidden", 8, "--epochs", 15, "--log", "--window-scale",
              "--target", "change", "--out", root / "run", "--quiet"))
    ok(invoke("export", root / "run", "--out", root / "bundle"))
    return root, path, values


def test_the_transform_is_kept_in_the_spec(transformed):
    root, _, _ = transformed
    spec = json.loads((root / "run" / "checkpoint.json").read_text())["spec"]
    assert spec["forecast_transform"] == {"target": "change", "log": True, "window_scale": True}
    manifest = json.loads((root / "bundle" / "manifest.json").read_text())
    assert manifest["spec"]["forecast_transform"] == spec["forecast_transform"]
    assert manifest["streaming"]["supported"] is False and "needs whole windows" in manifest["streaming"]["reason"]
    assert not any(v["graph"] == "step" for v in manifest["variants"])  # no step graph a device would misuse


def test_the_runtime_takes_raw_windows_and_returns_raw_forecasts(transformed):
    """The runtime's forecast equals the transform written out by hand around the PyTorch model."""
    import torch

    from edgernn.checkpoint import load_checkpoint
    from edgernn.nn import load_torch_model
    from edgernn.runtime import load

    root, _, values = transformed
    ckpt = load_checkpoint(root / "run")
    windows = np.stack([values[s : s + 24] for s in (0, 50, 119)])[:, :, None]  # raw units, (3, 24, 1)
    a = np.log(windows)
    c, s = a.mean(axis=1, keepdims=True), a.std(axis=1, keepdims=True)
    norm = ckpt.spec.normalization
    x = ((a - c) / s - norm.x_mean[0]) / norm.x_std[0]
    with torch.no_grad():
        out = load_torch_model(ckpt.spec, ckpt.weights)(torch.from_numpy(x.astype(np.float32))).numpy()
    expected = np.exp((out * norm.y_std[0] + norm.y_mean[0]) * s[:, 0] + a[:, -1])  # change from the last value
    got = load(root / "bundle").predict(windows.astype(np.float32)).values
    np.testing.assert_allclose(got, expected, rtol=1e-4)
    assert np.all(np.abs(got[:, 0] - windows[:, -1, 0]) < 0.5 * windows[:, -1, 0])  # raw units, near the level


def test_evaluate_scores_in_raw_units_like_training(transformed):
    root, _, _ = transformed
    report = json.loads(ok(invoke("evaluate", root / "bundle", "--checkpoint", root / "run", "--json")).stdout)
    metrics = json.loads((root / "run" / "metrics.json").read_text())
    scores = {s["variant"]: s["metrics"]["mse"] for s in report["scores"]}
    assert scores["pytorch-fp32"] == pytest.approx(metrics["test"]["mse"], rel=1e-4)
    assert scores["onnx-window-fp32"] == pytest.approx(metrics["test"]["mse"], rel=1e-4)


def test_run_reads_the_dated_series_like_training_and_refuses_to_stream(transformed):
    from edgernn.runtime import load

    root, path, values = transformed
    lines = ok(invoke("run", root / "bundle", "--input", path)).stdout.splitlines()
    assert len(lines) == len(values) - 24 + 1  # every window of 24 months, the last one included
    last = load(root / "bundle").predict(values[-24:, None][None].astype(np.float32)).values[0, 0]
    assert json.loads(lines[-1])["prediction"][0] == pytest.approx(last, rel=1e-5)
    result = invoke("run", root / "bundle", "--stream", input="120\n")
    assert result.exit_code == 2 and "cannot stream frame by frame" in result.stderr


def test_log_of_non_positive_data_is_refused(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("".join(f"{v}\n" for v in np.sin(np.arange(100) / 5)))
    result = invoke("train", "--data", path, "--head", "forecast", "--window", 8, "--log", "--out", tmp_path / "r")
    assert result.exit_code == 2 and "the log transform needs inputs > 0" in result.stderr


# ---- 8. calibration coverage and margin ------------------------------------------------------------


@pytest.fixture(scope="module")
def trending(tmp_path_factory):
    root = tmp_path_factory.mktemp("trending")
    rng = np.random.default_rng(3)
    series = 10 + 0.2 * np.arange(400) + rng.normal(0, 0.5, 400)  # the test period lies above every train value
    path = root / "trend.csv"
    path.write_text("".join(f"{v:.4f}\n" for v in series))
    ok(invoke("train", "--data", path, "--head", "forecast", "--window", 12, "--hidden", 8, "--epochs", 3,
              "--out", root / "run", "--quiet"))
    ok(invoke("export", root / "run", "--out", root / "plain", "--quantize", "int8-static"))
    ok(invoke("export", root / "run", "--out", root / "wide", "--quantize", "int8-static",
              "--calibration-margin", 3))
    return root, series


def _input_range(bundle):
    manifest = json.loads((bundle / "manifest.json").read_text())
    v = next(v for v in manifest["variants"] if v["name"] == "onnx-window-int8-static")
    return v["quantization"]["input_range"], manifest


def test_export_records_the_calibrated_range_and_widens_it_by_the_margin(trending):
    root, _ = trending
    (lo, hi), _ = _input_range(root / "plain")
    (lo_w, hi_w), _ = _input_range(root / "wide")
    assert hi > lo
    assert (lo_w, hi_w) == pytest.approx((lo - 3 * (hi - lo), hi + 3 * (hi - lo)))


def test_evaluate_and_run_report_calibration_coverage(trending, tmp_path):
    from edgernn.datasource import DataSource

    root, series = trending
    (lo, hi), manifest = _input_range(root / "plain")
    test = DataSource.from_dict(manifest["data"]).splits().test
    norm = manifest["spec"]["normalization"]
    x = (test.x - norm["x_mean"][0]) / norm["x_std"][0]
    expected = float(np.mean((x < lo) | (x > hi)))
    assert expected > 0.5  # the trend carried the test period out of the calibrated range
    report = json.loads(ok(invoke("evaluate", root / "plain", "--json", "--max-drop", 1e9)).stdout)
    score = next(s for s in report["scores"] if s["variant"] == "onnx-window-int8-static")
    assert score["outside_calibration"] == pytest.approx(expected, abs=1e-6)
    for s in report["scores"]:  # every int8-static graph (window and step) reports it, no other variant does
        if s["variant"].endswith("int8-static"):
            assert s["outside_calibration"] == pytest.approx(expected, abs=1e-6), s["variant"]
        else:
            assert s["outside_calibration"] is None, s["variant"]
    wide = json.loads(ok(invoke("evaluate", root / "wide", "--json", "--max-drop", 1e9)).stdout)
    assert next(s for s in wide["scores"] if s["variant"] == score["variant"])["outside_calibration"] < expected
    np.save(tmp_path / "w.npy", test.x)
    result = ok(invoke("run", root / "plain", "--variant", "onnx-window-int8-static", "--input", tmp_path / "w.npy"))
    assert f"calibration coverage of onnx-window-int8-static: {100 * expected:.2f} % of input values outside" \
        in result.stderr
