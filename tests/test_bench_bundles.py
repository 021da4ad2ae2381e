"""`edgernn bench` on whole bundles with TFLite variants: the shipped models/ and every kind the demo makes.

The cold start of a .tflite variant once crashed (its baseline script read an onnxruntime session the
TFLite backend does not have). Few repeats and one cold run keep this short; no timed assertions.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

pytest.importorskip("ai_edge_litert")

from edgernn.cli import cli  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
QUICK = ["--repeat", "3", "--cold-runs", "1", "--batch", "2", "--json"]
PRECISIONS = ("fp32", "fp16", "int8-weights", "int8-dynamic", "int8-static")


def _bench_whole_bundle(bundle: Path) -> dict:
    manifest = json.loads((bundle / "manifest.json").read_text())
    result = CliRunner().invoke(cli, ["bench", str(bundle), *QUICK])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    by_name = {v["name"]: v for v in report["variants"]}
    assert set(by_name) == {v["name"] for v in manifest["variants"]}, report["notes"]
    assert not [n for n in report["notes"] if n.startswith("skipped")]
    tflite = [v for v in report["variants"] if v["format"] == "tflite"]
    assert tflite, "the bundle has TFLite variants"
    for v in report["variants"]:
        cold = v["cold_start"]
        assert math.isfinite(cold["seconds"]) and cold["seconds"] > 0
        assert math.isfinite(cold["bare_seconds"]) and cold["bare_seconds"] > 0, v["name"]
        assert (v["window"] is None) == (v["graph"] == "step")
    assert report["cli_cold_start"]["bare_seconds"] > 0
    return report


@pytest.mark.parametrize("name", ["sum-lstm", "bands-gru"])
@pytest.mark.slow
def test_bench_a_shipped_bundle_with_tflite_variants(name):
    _bench_whole_bundle(ROOT / "models" / name / "bundle")


# The demo's bundles: sum, sine and bands, each with an LSTM and a GRU, exported to ONNX and TFLite with
# every precision. sum-lstm and bands-gru are the shipped bundles above; the other four are trained tiny here.
@pytest.mark.parametrize("task,cell", [("sum", "gru"), ("sine", "lstm"), ("sine", "gru"), ("bands", "lstm")])
@pytest.mark.slow
def test_bench_every_bundle_kind_the_demo_makes(task, cell, tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("ai_edge_quantizer")
    run, bundle = tmp_path / "run", tmp_path / "bundle"
    result = CliRunner().invoke(cli, ["train", "--task", task, "--cell", cell, "--out", str(run), "--quiet",
                                      "--epochs", "1", "--hidden", "8", "--samples", "120", "--json"])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(cli, ["export", str(run), "--out", str(bundle), "--format", "onnx,tflite",
                                      "--quantize", ",".join(PRECISIONS[1:]), "--best-effort", "--json"])
    assert result.exit_code == 0, result.output  # --best-effort: a GRU has no ONNX int8-dynamic, TFLite no int8-weights
    report = _bench_whole_bundle(bundle)
    names = {v["name"] for v in report["variants"]}
    asked = {f"{f}-{g}-{p}" for f in ("onnx", "tflite") for g in ("window", "step") for p in PRECISIONS}
    not_written = {f"onnx-{g}-int8-dynamic" for g in ("window", "step") if cell == "gru"} | {
        f"tflite-{g}-int8-weights" for g in ("window", "step")}
    assert asked - not_written <= names
