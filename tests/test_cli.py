"""The command line as a user runs it, through click's CliRunner: train, export and validate; exit
codes, parsed --json, exact error text, and no partial output (run, info and --stream: test_cli_run.py)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from helpers import (
    BIDIRECTIONAL_SPEC, assert_ok, assert_one_line_error, invoke, no_leftovers, read_manifest_json, write_manifest_json,
)
from edgernn.cli import fmt
from edgernn.parity import TOLERANCES
from edgernn.runtime import load

FP32 = TOLERANCES["fp32"]


# --------------------------------------------------------------------------------------------
# train
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("task,cell,plot", [("sum", "lstm", "predictions.png"), ("bands", "gru", "confusion.png")])
def test_train_writes_a_self_describing_run_and_truthful_metrics(tmp_path, task, cell, plot):
    out = tmp_path / "run"
    result = invoke("train", "--task", task, "--cell", cell, "--samples", 200, "--epochs", 2, "--hidden", 4,
                    "--out", out, "--json", "--quiet")
    assert_ok(result)
    d = json.loads(result.stdout)
    assert d["run_dir"] == str(out)
    assert d["spec"]["cell"] == cell and d["spec"]["hidden_size"] == 4
    assert d["task"] == task
    assert 1 <= d["epochs_run"] <= 2 and 1 <= d["best_epoch"] <= d["epochs_run"]
    assert sum(d["samples"].values()) == 200
    for name in ("model.safetensors", "checkpoint.json", "metrics.json", "loss.png", plot):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert no_leftovers(tmp_path) == []
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test"] == d["test"] and metrics["baselines"] == d["baselines"]

    # The reported test metric and baseline, recomputed here from the checkpoint and the same split.
    from edgernn.checkpoint import load_checkpoint
    from edgernn.datasource import DataSource
    import torch

    from edgernn.nn import load_torch_model

    ckpt = load_checkpoint(out)
    assert ckpt.spec.to_dict() == d["spec"]
    splits = DataSource.from_dict(ckpt.data).splits()
    norm = ckpt.spec.normalization
    z = (splits.test.x - np.asarray(norm.x_mean)) / np.asarray(norm.x_std)
    with torch.no_grad():  # the checkpoint's model on the windows, normalised here by hand
        raw = load_torch_model(ckpt.spec, ckpt.weights)(torch.from_numpy(z.astype(np.float32))).numpy().astype(np.float64)
    if task == "sum":
        pred = raw * np.asarray(norm.y_std) + np.asarray(norm.y_mean)
        assert d["test"]["mse"] == pytest.approx(np.mean((pred - splits.test.y) ** 2), rel=1e-4)
        mean_baseline = np.mean((splits.train.y.mean(axis=0) - splits.test.y) ** 2)
        assert d["baselines"]["training mean"]["mse"] == pytest.approx(mean_baseline, rel=1e-6)
    else:
        assert d["test"]["accuracy"] == pytest.approx(np.mean(raw.argmax(axis=1) == splits.test.y))
        majority = np.bincount(splits.train.y.astype(int)).argmax()
        assert list(d["baselines"].values())[0]["accuracy"] == pytest.approx(np.mean(splits.test.y == majority))


def test_train_text_output_names_metric_and_baseline(tmp_path):
    result = invoke("train", "--task", "sum", "--samples", 200, "--epochs", 1, "--hidden", 4, "--out",
                    tmp_path / "run", "--quiet")
    assert_ok(result)
    assert result.stdout.startswith("trained lstm (")
    assert "test split:  mse " in result.stdout
    assert "baseline (training mean):  mse " in result.stdout


def test_train_refuses_a_folder_it_did_not_write(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    result = invoke("train", "--task", "sum", "--samples", 200, "--epochs", 1, "--hidden", 4, "--out", folder, "--quiet")
    assert_one_line_error(result, 2, f"{folder}: folder exists and was not written by edgernn; "
                                     "choose a new or empty folder")
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]
    assert (folder / "notes.txt").read_text() == "keep me"
    assert no_leftovers(tmp_path) == []


def test_train_refuses_the_folder_before_training(tmp_path, monkeypatch):
    """The user hears about a bad --out at once, not after the whole training run."""
    import edgernn.nn.train as train_module
    from edgernn.datasource import DataSource
    from edgernn.errors import BadInputError

    def training_started(*args, **kwargs):
        raise AssertionError("training started before the output folder was checked")

    monkeypatch.setattr(train_module, "build_model", training_started)
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    with pytest.raises(BadInputError, match="folder exists and was not written by edgernn"):
        train_module.train(DataSource(task="sum", n=200), train_module.TrainConfig(epochs=1), folder, progress=False)


def test_train_unknown_task_is_bad_input(tmp_path):
    result = invoke("train", "--task", "nope", "--out", tmp_path / "run")
    assert_one_line_error(result, 2, "unknown task 'nope'; built-in tasks: sum, sine, bands")
    assert not (tmp_path / "run").exists()


# --------------------------------------------------------------------------------------------
# export
# --------------------------------------------------------------------------------------------


def test_export_json_writes_a_validated_bundle(trained_run, tmp_path):
    out = tmp_path / "bundle"
    result = invoke("export", trained_run, "--out", out, "--json")
    assert_ok(result)
    d = json.loads(result.stdout)
    assert d["bundle"] == str(out) and d["validated"] is True
    assert [v["name"] for v in d["variants"]] == ["onnx-window-fp32", "onnx-step-fp32"]
    manifest = read_manifest_json(out)
    for v, m in zip(d["variants"], manifest["variants"]):
        assert (v["file"], v["size"]) == (m["file"], m["size"]) == (m["file"], (out / m["file"]).stat().st_size)
        assert v["parity"]["against"] == "numpy"
        assert 0 <= v["parity"]["max_abs"] <= FP32.atol
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "model.onnx", "model.step.onnx"]
    assert no_leftovers(tmp_path) == []


def test_export_text_output_lists_each_variant(trained_run, tmp_path):
    result = invoke("export", trained_run, "--out", tmp_path / "bundle")
    assert_ok(result)
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"exported {trained_run} → {tmp_path / 'bundle'}/ in ")
    assert lines[1].split()[:2] == ["onnx-window-fp32", "model.onnx"] and "vs numpy" in lines[1]
    assert lines[2].split()[:2] == ["onnx-step-fp32", "model.step.onnx"] and "vs numpy" in lines[2]


def test_export_refuses_a_folder_it_did_not_write(trained_run, tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "data.csv").write_text("1,2\n")
    result = invoke("export", trained_run, "--out", folder)
    assert_one_line_error(result, 2, "folder exists and was not written by edgernn")
    assert sorted(p.name for p in folder.iterdir()) == ["data.csv"]


def test_export_replaces_its_own_bundle(trained_run, tmp_path):
    out = tmp_path / "bundle"
    assert_ok(invoke("export", trained_run, "--out", out))
    (out / "model.int8.onnx").write_bytes(b"stale")  # a file the new export does not write
    assert_ok(invoke("export", trained_run, "--out", out))
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "model.onnx", "model.step.onnx"]
    assert no_leftovers(tmp_path) == []


def test_failed_export_leaves_nothing_at_out(trained_run, tmp_path):
    """A checkpoint whose weights hold a NaN fails parity: exit 1, no bundle, no staging folder."""
    from safetensors.numpy import load_file, save_file

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    weights = load_file(str(run / "model.safetensors"))
    weights["head.bias"] = np.full_like(weights["head.bias"], np.nan)
    save_file(weights, str(run / "model.safetensors"))
    out = tmp_path / "bundle"
    result = invoke("export", run, "--out", out)
    assert_one_line_error(result, 1, "parity check failed, bundle not written (onnx-window-fp32: max abs nan")
    assert not out.exists()
    assert no_leftovers(tmp_path) == []


@pytest.mark.parametrize("option,value,graph", [("--opset", 7, "step"), ("--ir-version", 3, "window")])
def test_export_at_an_unusable_onnx_version_is_bad_input(trained_run, tmp_path, option, value, graph):
    out = tmp_path / "bundle"
    result = invoke("export", trained_run, "--out", out, option, value)
    opset, ir = (value, 8) if option == "--opset" else (17, value)
    assert_one_line_error(result, 2, f"cannot write the {graph} graph at opset {opset}, IR version {ir} "
                                     "(defaults: opset 17, IR 8): ")
    assert not out.exists() and no_leftovers(tmp_path) == []


def test_export_of_a_missing_checkpoint(tmp_path):
    result = invoke("export", tmp_path / "nope", "--out", tmp_path / "bundle")
    assert_one_line_error(result, 2, f"{tmp_path / 'nope'}: no such checkpoint folder")
    assert not (tmp_path / "bundle").exists()


# --------------------------------------------------------------------------------------------
# validate
# --------------------------------------------------------------------------------------------


def test_validate_json_reports_window_and_streaming_parity(trained_bundle):
    result = invoke("validate", trained_bundle, "--json")
    assert_ok(result)
    d = json.loads(result.stdout)
    assert d["passed"] is True
    reports = {r["variant"]: r for r in d["variants"]}
    assert sorted(reports) == ["onnx-step-fp32", "onnx-window-fp32"]

    window = reports["onnx-window-fp32"]["comparisons"]
    assert {c["against"] for c in window} == {"numpy", "probe"}  # no checkpoint: no torch
    swept = {(c["batch"], c["length"]) for c in window if c["against"] == "numpy"}
    assert swept == {(b, t) for b in (1, 3, 16) for t in (1, 20, 60)}
    assert {(c["batch"], c["length"]) for c in window if c["against"] == "probe"} == {(2, 20)}
    assert {c["output"] for c in window} == {"y", "h_n", "c_n"}

    step = reports["onnx-step-fp32"]["comparisons"]
    assert {c["mode"] for c in step} == {"stream"}
    assert {(c["against"], c["output"]) for c in step} >= {
        ("numpy", "y_every_step"), ("numpy", "y_last_step"), ("window", "y_last_step"), ("window", "h_n"),
        ("window", "c_n")}
    for r in d["variants"]:
        assert r["passed"] is True
        assert r["tolerance"]["atol"] == FP32.atol and r["tolerance"]["rtol"] == FP32.rtol
        assert all(c["passed"] and c["max_abs"] <= FP32.atol for c in r["comparisons"])


def test_validate_with_checkpoint_compares_with_torch(trained_bundle, trained_run):
    result = invoke("validate", trained_bundle, "--checkpoint", trained_run, "--json")
    assert_ok(result)
    d = json.loads(result.stdout)
    window = next(r for r in d["variants"] if r["variant"] == "onnx-window-fp32")
    torch_cases = [c for c in window["comparisons"] if c["against"] == "torch"]
    assert {c["output"] for c in torch_cases} == {"y", "h_n", "c_n"}
    # the model's own data decides (one window alone, 16 together); the 3 × 3 random probes are drift
    assert len([c for c in torch_cases if c["probe"] == "data" and c["decides"]]) == 3 * 2
    assert len([c for c in torch_cases if c["probe"] == "random" and not c["decides"]]) == 3 * 9
    assert all(c["passed"] for c in torch_cases)


def test_validate_text_output_is_one_line_per_variant(trained_bundle):
    result = invoke("validate", trained_bundle, "--batch", 2, "--length", 5)
    assert_ok(result)
    lines = result.stdout.splitlines()
    report = json.loads(invoke("validate", trained_bundle, "--batch", 2, "--length", 5, "--json").stdout)
    assert len(lines) == 1 + len(report["variants"]) + 1  # header, one per variant, verdict
    assert lines[0].split() == ["variant", "closest", "to", "its", "tolerance", "tolerance", "margin"]
    assert lines[-1] == "parity: passed"
    for line, variant in zip(lines[1:-1], report["variants"]):
        closest = max((c for c in variant["comparisons"] if c["decides"]), key=lambda c: c["tolerance_used"])
        words = line.split()
        assert words[:2] == ["ok", variant["variant"]]
        assert words[2:4] == ["max", "abs"] and words[4] == fmt(closest["max_abs"])
        assert words[5:8] == [closest["output"], "vs", closest["against"]]
        tol = variant["tolerance"]
        assert words[8:12] == ["atol", f"{tol['atol']:g}", "rtol", f"{tol['rtol']:g}"]
        margin = 1 / closest["tolerance_used"]
        assert words[-1].endswith("×") and float(words[-1][:-1].replace(",", "")) == pytest.approx(margin, rel=0.05)


def test_validate_verbose_lists_every_reference_and_output(trained_bundle):
    result = invoke("validate", trained_bundle, "--batch", 2, "--length", 5, "--verbose")
    assert_ok(result)
    lines = result.stdout.splitlines()
    assert lines[1].split()[:2] == ["ok", "onnx-window-fp32"]
    # deciding: the training data (one window alone, 16 together) and the probe stored at export;
    # then the random probe the options asked for (batch 2, length 5), reported as drift
    assert [line.split()[1:4] for line in lines[2:11]] == [
        ["numpy", "y", "data"], ["numpy", "h_n", "data"], ["numpy", "c_n", "data"],
        ["probe", "y", "stored"], ["probe", "h_n", "stored"], ["probe", "c_n", "stored"],
        ["numpy", "y", "random"], ["numpy", "h_n", "random"], ["numpy", "c_n", "random"]]
    assert all(line.endswith("over 2 cases  ok") for line in lines[2:5])
    assert all(line.endswith("over 1 cases  ok") for line in lines[5:8])
    assert all(line.endswith("over 1 cases  drift") for line in lines[8:11])
    assert lines[11].split()[:2] == ["ok", "onnx-step-fp32"]
    step_lines = lines[12:-1]
    assert [line.split()[1:3] for line in step_lines[:10]] == [
        ["numpy", "y_every_step"], ["numpy", "y_last_step"], ["numpy", "h_n"], ["numpy", "c_n"],
        ["probe", "h_n"], ["probe", "c_n"], ["probe", "y"],
        ["window", "y_last_step"], ["window", "h_n"], ["window", "c_n"]]
    assert all(line.endswith("  ok") for line in step_lines[:10])
    assert all(line.endswith("  drift") for line in step_lines[10:]) and len(step_lines) == 17


def test_tolerance_used_is_the_largest_error_over_what_is_allowed():
    from edgernn.parity import Tolerance, compare_figures

    want = np.array([1.0, -10.0, 0.0])
    got = want + np.array([0.002, 0.005, -0.0005])
    element = compare_figures(got, want, Tolerance(atol=0.001, rtol=0.01))
    # allowed per element: 0.011, 0.101, 0.001 → used 0.002/0.011, 0.005/0.101, 0.0005/0.001
    assert element[3] is True and element[4] == pytest.approx(0.5)
    ranged = compare_figures(got, want, Tolerance(atol=0.001, rtol=0.01, scale="range"))
    assert ranged[4] == pytest.approx(0.005 / (0.001 + 0.01 * 10.0))
    assert compare_figures(got[:2], want, Tolerance(0.1, 0.1))[3:] == (False, float("inf"))


def corrupt_weights(bundle: Path, initializer: str = "W_hh_l0", delta: float = 0.5) -> None:
    """Rewrite model.onnx with one weight changed, and record its new sha256 and size so the
    checksum passes and only parity can tell."""
    import onnx
    from onnx import numpy_helper

    path = bundle / "model.onnx"
    model = onnx.load(str(path))
    for t in model.graph.initializer:
        if t.name == initializer:
            t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t) + np.float32(delta), initializer))
    path.write_bytes(model.SerializeToString())
    manifest = read_manifest_json(bundle)
    entry = next(v for v in manifest["variants"] if v["file"] == "model.onnx")
    entry["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    entry["size"] = path.stat().st_size
    write_manifest_json(bundle, manifest)


def test_validate_fails_with_exit_1_on_a_corrupted_variant(trained_bundle, trained_run, copy_bundle):
    bundle = copy_bundle(trained_bundle)
    corrupt_weights(bundle)
    assert load(bundle).predict(np.full((1, 20, 1), 0.5)).values.shape == (1, 1)  # checksum passes: it loads

    result = invoke("validate", bundle, "--json")
    assert result.exit_code == 1
    d = json.loads(result.stdout)
    assert d["passed"] is False
    assert not next(r for r in d["variants"] if r["variant"] == "onnx-step-fp32")["passed"]
    assert result.stderr.startswith("error: parity check failed for: ")

    result = invoke("validate", bundle, "--checkpoint", trained_run, "--json")
    assert result.exit_code == 1
    d = json.loads(result.stdout)
    window = next(r for r in d["variants"] if r["variant"] == "onnx-window-fp32")
    assert window["passed"] is False
    failing = {(c["against"], c["output"]) for c in window["comparisons"] if not c["passed"]}
    assert {("torch", "y"), ("numpy", "y"), ("torch", "h_n")} <= failing
    assert result.stderr == "error: parity check failed for: onnx-window-fp32, onnx-step-fp32\n"

    result = invoke("validate", bundle, "--checkpoint", trained_run)
    assert result.exit_code == 1
    assert result.stdout.splitlines()[-1] == "parity: FAILED"
    assert "FAIL" in result.stdout.splitlines()[1]

    result = invoke("validate", bundle, "--checkpoint", trained_run, "--warn-only")
    assert_ok(result)
    assert result.stdout.splitlines()[-1] == "parity: FAILED"


def test_validate_catches_altered_weights_in_a_bidirectional_bundle(make_bundle, copy_bundle):
    bundle = copy_bundle(make_bundle(BIDIRECTIONAL_SPEC))
    corrupt_weights(bundle, "W_ih_l0")
    assert invoke("validate", bundle).exit_code == 1


def test_validate_refuses_a_checkpoint_of_another_model(trained_bundle, trained_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    info = json.loads((run / "checkpoint.json").read_text())
    info["spec"]["task"] = "other"
    (run / "checkpoint.json").write_text(json.dumps(info))
    result = invoke("validate", trained_bundle, "--checkpoint", run)
    assert_one_line_error(result, 2, f"{run}: this checkpoint's model spec differs from the bundle's")


