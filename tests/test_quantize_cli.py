"""`edgernn export --quantize` through the command line: the variants written, one-line refusals, and
--calibration; bidirectional models get their int8 window variants."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edgernn.bundle import read_manifest
from edgernn.cli import cli
from edgernn.spec import ModelSpec
from helpers import random_weights


# ---- the command line -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gru_run(tmp_path_factory) -> Path:
    """A GRU trained briefly on the built-in ``sum`` task: a checkpoint with a data source."""
    from edgernn.datasource import DataSource
    from edgernn.nn.train import TrainConfig, train

    out = tmp_path_factory.mktemp("runs") / "sum-gru"
    train(DataSource(task="sum", n=200), TrainConfig(cell="gru", epochs=1, hidden_size=8), out, progress=False)
    return out


def test_export_quantize_through_the_cli(gru_run, tmp_path):
    out = tmp_path / "bundle"
    result = CliRunner().invoke(cli, ["export", str(gru_run), "--out", str(out), "--quantize",
                                      "int8-static, fp16,int8-dynamic,int8-weights", "--best-effort", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)  # stderr lists what was not written
    assert [v["name"] for v in payload["variants"]] == [
        "onnx-window-fp32", "onnx-step-fp32", "onnx-window-fp16", "onnx-step-fp16", "onnx-window-int8-weights",
        "onnx-step-int8-weights", "onnx-window-int8-static", "onnx-step-int8-static"]
    assert [n["variant"] for n in payload["not_written"]] == ["onnx-*-int8-dynamic"]  # a GRU: no int8 kernel
    # without --best-effort: refused in one line, nothing written
    text = CliRunner().invoke(cli, ["export", str(gru_run), "--out", str(tmp_path / "b2"), "--quantize", "int8-dynamic"])
    assert text.exit_code == 2, text.output
    assert text.output.startswith("error: cannot write onnx-*-int8-dynamic: onnxruntime has no int8 GRU kernel")
    assert len(text.output.strip().splitlines()) == 1 and not (tmp_path / "b2").exists()
    assert all(v["parity"]["max_abs"] >= 0 for v in payload["variants"])
    static = read_manifest(out).variant("onnx-step-int8-static")
    assert static.quantization["calibration"].startswith("training split of sum")
    assert (out / "model.step.int8-static.onnx").is_file()

    info = CliRunner().invoke(cli, ["info", str(out)])
    assert info.exit_code == 0, info.output
    assert "precision report" in info.output and "int8" in info.output


def test_bad_quantize_value_exits_2_with_one_line(gru_run, tmp_path):
    result = CliRunner().invoke(cli, ["export", str(gru_run), "--out", str(tmp_path / "b"), "--quantize", "fp16,int4"])
    assert result.exit_code == 2
    assert result.output == ("error: --quantize expects a comma-separated list of fp16, int8-weights, int8-dynamic, "
                             "int8-static, got 'fp16,int4'\n")
    assert not (tmp_path / "b").exists()


def test_calibration_file_of_the_wrong_shape_exits_2(gru_run, tmp_path):
    bad = tmp_path / "calibration.npy"
    np.save(bad, np.zeros((4, 10, 3), np.float32))  # the model has 1 feature
    result = CliRunner().invoke(cli, ["export", str(gru_run), "--out", str(tmp_path / "b"), "--quantize", "int8-static",
                                      "--calibration", str(bad)])
    assert result.exit_code == 2
    assert result.output == f"error: {bad}: expected input of shape (N, T, 1), got (4, 10, 3)\n"
    assert not (tmp_path / "b").exists()


def test_calibration_file_is_used_for_int8_static(gru_run, tmp_path):
    calibration = tmp_path / "calibration.npy"
    np.save(calibration, np.random.default_rng(0).uniform(0, 1, (40, 10)).astype(np.float32))  # (N, T), 1 feature
    result = CliRunner().invoke(cli, ["export", str(gru_run), "--out", str(tmp_path / "b"), "--quantize", "int8-static",
                                      "--calibration", str(calibration)])
    assert result.exit_code == 0, result.output
    assert read_manifest(tmp_path / "b").variant("onnx-window-int8-static").quantization["calibration"].startswith(
        f"{calibration} (40 windows)")


def test_bidirectional_model_gets_int8_window_variants(tmp_path):
    from edgernn.export import export_bundle

    spec = ModelSpec(cell="gru", input_size=2, hidden_size=8, bidirectional=True, output_size=1, window=6)
    result = export_bundle(spec, random_weights(spec, 3), tmp_path / "b", quantize=("int8-weights", "int8-static"),
                           calibration=np.random.default_rng(1).standard_normal((16, 6, 2)).astype(np.float32))
    names = [v.name for v in result.manifest.variants]
    assert names == ["onnx-window-fp32", "onnx-window-int8-weights", "onnx-window-int8-static"]
    assert all(r.passed for r in result.reports)


def test_bidirectional_lstm_gets_an_int8_dynamic_window_variant(tmp_path):
    from edgernn.export import export_bundle

    spec = ModelSpec(cell="lstm", input_size=2, hidden_size=8, num_layers=2, bidirectional=True, output_size=1, window=6)
    result = export_bundle(spec, random_weights(spec, 3), tmp_path / "b", quantize=("int8-dynamic",),
                           calibration=np.random.default_rng(1).standard_normal((16, 6, 2)).astype(np.float32))
    assert [v.name for v in result.manifest.variants] == ["onnx-window-fp32", "onnx-window-int8-dynamic"]
    assert all(r.passed for r in result.reports)
