"""The command line as a user runs it, through click's CliRunner: train, export, validate, run
(windows and --stream), info; exit codes, parsed --json, exact error text, and no partial output."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from helpers import (BIDIRECTIONAL_SPEC, CLASSIFIER_SPEC, REGRESSION_SPEC, random_weights, read_manifest_json,
                      write_manifest_json, invoke)
from edgernn.cli import fmt
from edgernn.parity import TOLERANCES
from edgernn.reference import model_forward
from edgernn.runtime import load

FP32 = TOLERANCES["fp32"]


def assert_ok(result) -> None:
    assert result.exit_code == 0, f"exit {result.exit_code}\nstdout: {result.stdout}\nstderr: {result.stderr}"


def assert_one_line_error(result, exit_code: int, message: str) -> None:
    """Exit code, no traceback, nothing on stdout, and exactly one line on stderr holding ``message``."""
    assert result.exit_code == exit_code, f"stdout: {result.stdout}\nstderr: {result.stderr}"
    assert isinstance(result.exception, SystemExit), repr(result.exception)  # not an uncaught exception
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert message in lines[0], lines[0]


def assert_close(got, want, what: str = "") -> None:
    np.testing.assert_allclose(np.asarray(got, np.float64), np.asarray(want, np.float64),
                               atol=FP32.atol, rtol=FP32.rtol, err_msg=what)


def model_units(spec, values) -> np.ndarray:
    """De-normalised predictions back to the head's units, where the fp32 tolerance applies."""
    norm = spec.normalization
    return (np.asarray(values, np.float64) - np.asarray(norm.y_mean)) / np.asarray(norm.y_std)


def reference_raw(spec, weights, x_data_units: np.ndarray) -> np.ndarray:
    """The head output the NumPy reference gives for windows in data units: (N, O)."""
    norm = spec.normalization
    z = (np.asarray(x_data_units, np.float64) - np.asarray(norm.x_mean)) / np.asarray(norm.x_std)
    y, _ = model_forward(spec, weights, z)
    return y


def reference_per_step(spec, weights, frames: np.ndarray) -> np.ndarray:
    """The head on every step's hidden state, one stream: (T, O)."""
    norm = spec.normalization
    z = (np.asarray(frames, np.float64)[None] - np.asarray(norm.x_mean)) / np.asarray(norm.x_std)
    _, rnn = model_forward(spec, weights, z)
    return (rnn.output @ weights["head.weight"].astype(np.float64).T + weights["head.bias"])[0]


def data_units(spec, shape, seed: int) -> np.ndarray:
    norm = spec.normalization
    z = np.random.default_rng(seed).standard_normal(shape)
    return (np.asarray(norm.x_mean) + np.asarray(norm.x_std) * z).astype(np.float32)


def write_csv_windows(path: Path, x: np.ndarray, header: bool = False) -> None:
    """One window per row, flattened time-major (t0f0, t0f1, …), as `run --input x.csv` reads it."""
    rows = x.reshape(len(x), -1)
    lines = [",".join(f"t{t}f{f}" for t in range(x.shape[1]) for f in range(x.shape[2]))] if header else []
    lines += [",".join(repr(float(v)) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")


def jsonl(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def no_leftovers(folder: Path) -> list[str]:
    """Names of staging or temporary files a command may have left behind."""
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


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
    from edgernn.nn.train import predict_numpy
    from edgernn.nn import load_torch_model

    ckpt = load_checkpoint(out)
    assert ckpt.spec.to_dict() == d["spec"]
    splits = DataSource.from_dict(ckpt.data).splits()
    norm = ckpt.spec.normalization
    z = (splits.test.x - np.asarray(norm.x_mean)) / np.asarray(norm.x_std)
    raw = predict_numpy(load_torch_model(ckpt.spec, ckpt.weights), z.astype(np.float32)).astype(np.float64)
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


# --------------------------------------------------------------------------------------------
# run: windows from .npy / .csv
# --------------------------------------------------------------------------------------------


def test_run_npy_and_csv_give_predict_and_the_reference(make_bundle, tmp_path):
    spec = REGRESSION_SPEC
    bundle = make_bundle(spec)
    x = data_units(spec, (5, 6, 3), seed=11)
    np.save(tmp_path / "x.npy", x)
    write_csv_windows(tmp_path / "x.csv", x)
    write_csv_windows(tmp_path / "x_header.csv", x, header=True)
    want = reference_raw(spec, random_weights(spec, 0), x)  # (5, 2) model units
    predicted = load(bundle).predict(x).values

    result = invoke("run", bundle, "--input", tmp_path / "x.npy")
    assert_ok(result)
    records = jsonl(result.stdout)
    assert [list(r) for r in records] == [["prediction"]] * 5
    got = np.array([r["prediction"] for r in records])
    assert_close(model_units(spec, got), want, "run .npy vs numpy reference")
    assert_close(got, predicted, "run .npy vs Model.predict")

    for source in ("x.csv", "x_header.csv"):
        out = tmp_path / f"{source}.out.csv"
        result = invoke("run", bundle, "--input", tmp_path / source, "--output", out)
        assert_ok(result)
        assert result.stderr == f"wrote 5 predictions to {out}\n"
        rows = list(csv.DictReader(io.StringIO(out.read_text())))
        assert list(rows[0]) == ["prediction_0", "prediction_1"]
        got_csv = np.array([[float(r["prediction_0"]), float(r["prediction_1"])] for r in rows])
        assert_close(model_units(spec, got_csv), want, f"run {source} → csv vs numpy reference")

    out = tmp_path / "p.jsonl"
    assert_ok(invoke("run", bundle, "--input", tmp_path / "x.npy", "--output", out))
    assert jsonl(out.read_text()) == records
    assert no_leftovers(tmp_path) == []


def test_run_classifier_gives_labels_and_probabilities(make_bundle, tmp_path):
    spec = CLASSIFIER_SPEC
    bundle = make_bundle(spec)
    x = data_units(spec, (4, 8, 2), seed=12)
    np.save(tmp_path / "x.npy", x)
    logits = reference_raw(spec, random_weights(spec, 0), x)
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)

    result = invoke("run", bundle, "--input", tmp_path / "x.npy")
    assert_ok(result)
    for record, p in zip(jsonl(result.stdout), probabilities):
        assert record["label"] == spec.labels[int(p.argmax())] and record["class"] == int(p.argmax())
        assert list(record["probabilities"]) == ["low", "mid", "high"]
        assert_close(list(record["probabilities"].values()), p)

    out = tmp_path / "p.csv"
    assert_ok(invoke("run", bundle, "--input", tmp_path / "x.npy", "--format", "csv", "--output", out))
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert list(rows[0]) == ["label", "class", "p_low", "p_mid", "p_high"]
    assert_close([[float(r[f"p_{k}"]) for k in spec.labels] for r in rows], probabilities)


def test_run_trained_bundle_and_its_bare_onnx_file_agree_with_the_reference(trained_bundle, trained_run, tmp_path):
    from edgernn.checkpoint import load_checkpoint

    ckpt = load_checkpoint(trained_run)
    x = np.random.default_rng(13).uniform(0, 1, (6, 20))  # six `sum` windows, (N, T) for one feature
    np.save(tmp_path / "w.npy", x)
    want = reference_raw(ckpt.spec, ckpt.weights, x[:, :, None])
    outputs = []
    for model in (trained_bundle, trained_bundle / "model.onnx"):
        result = invoke("run", model, "--input", tmp_path / "w.npy")
        assert_ok(result)
        got = np.array([r["prediction"] for r in jsonl(result.stdout)])
        assert_close(model_units(ckpt.spec, got), want, f"run {model.name}")
        outputs.append(got)
    np.testing.assert_array_equal(outputs[0], outputs[1])


# --------------------------------------------------------------------------------------------
# info
# --------------------------------------------------------------------------------------------


def test_info_on_a_bundle(make_bundle):
    bundle = make_bundle(REGRESSION_SPEC)
    result = invoke("info", bundle)
    assert_ok(result)
    lines = result.stdout.splitlines()
    assert lines[0] == "2-layer LSTM, hidden 6, 3 features → regression (2 outputs), task test-regression"
    assert "trained on windows of 6 steps" in lines
    assert "streaming: yes (step graph)" in lines
    assert [line.split()[:2] for line in lines if line.startswith("  onnx-")] == [
        ["onnx-window-fp32", "model.onnx"], ["onnx-step-fp32", "model.step.onnx"]]

    result = invoke("info", bundle, "--json")
    assert_ok(result)
    d = json.loads(result.stdout)
    assert d["spec"] == REGRESSION_SPEC.to_dict() | {"normalization": d["spec"]["normalization"]}
    assert d["spec"]["normalization"]["x_std"] == [2.0, 0.5, 3.0]
    assert d["streaming"]["supported"] is True
    assert [v["name"] for v in d["variants"]] == ["onnx-window-fp32", "onnx-step-fp32"]
    assert d["variants"] == read_manifest_json(bundle)["variants"]
    assert "probe" not in d


def test_info_on_a_bidirectional_bundle_says_it_cannot_stream(make_bundle):
    result = invoke("info", make_bundle(BIDIRECTIONAL_SPEC))
    assert_ok(result)
    assert result.stdout.splitlines()[0] == "1-layer bidirectional LSTM, hidden 4, 3 features → regression (2 outputs)"
    assert ("streaming: no — bidirectional: the backward direction needs the whole window, so it cannot stream"
            in result.stdout.splitlines())


@pytest.mark.parametrize("file,graph,recurrent_op", [("model.onnx", "window", "LSTM"), ("model.step.onnx", "step", "LSTM")])
def test_info_on_a_bare_onnx_file(make_bundle, file, graph, recurrent_op):
    path = make_bundle(REGRESSION_SPEC) / file
    result = invoke("info", path, "--json")
    assert_ok(result)
    d = json.loads(result.stdout)
    assert d["file"] == str(path) and d["size"] == path.stat().st_size
    assert d["graph"] == graph
    assert d["ir_version"] == 8 and d["opset"] == {"ai.onnx": 17}
    assert d["spec"]["cell"] == "lstm" and d["spec"]["input_size"] == 3
    assert ("LSTM" in d["ops"]) == (recurrent_op == "LSTM")
    names = [i["name"] for i in d["inputs"]]
    assert names == (["x"] if graph == "window" else ["x_t", "h_in", "c_in"])

    result = invoke("info", path)
    assert_ok(result)
    assert result.stdout.splitlines()[0].startswith("2-layer LSTM, hidden 6, 3 features")
    assert "ir_version: 8" in result.stdout.splitlines()


# --------------------------------------------------------------------------------------------
# run --stream
# --------------------------------------------------------------------------------------------


def stream_expectation(spec, frames: np.ndarray) -> np.ndarray:
    """Model-unit predictions of one stream from a zero state: (T, O)."""
    return reference_per_step(spec, random_weights(spec, 0), frames)


def csv_line(frame) -> str:
    return ",".join(repr(float(v)) for v in frame)


def test_run_stream_reads_csv_and_json_lines(make_bundle):
    spec = REGRESSION_SPEC
    frames = data_units(spec, (6, 3), seed=21)
    lines = [csv_line(f) if k % 2 == 0 else json.dumps([float(v) for v in f]) for k, f in enumerate(frames)]
    lines[2] = " " + lines[2].replace(",", " , ") + " "  # spaces around values are fine
    result = invoke("run", make_bundle(spec), "--stream", input="\n".join(lines) + "\n")
    assert_ok(result)
    records = jsonl(result.stdout)
    assert [(r["frame"], r["step"]) for r in records] == [(k, k) for k in range(1, 7)]
    got = np.array([r["prediction"] for r in records])
    assert_close(model_units(spec, got), stream_expectation(spec, frames))
    assert result.stderr == "stream ended: 6 frames, 0 bad lines skipped, 0 resets\n"


def test_run_stream_skips_bad_lines_with_their_numbers(make_bundle):
    spec = REGRESSION_SPEC
    frames = data_units(spec, (4, 3), seed=22)
    lines = [csv_line(frames[0]), "abc", csv_line(frames[1]), "1,2", "nan,1,2", csv_line(frames[2]),
             "[1, \"x\", 3]", "[[1], [2], [3]]", csv_line(frames[3])]
    result = invoke("run", make_bundle(spec), "--stream", input="\n".join(lines) + "\n")
    assert_ok(result)
    assert result.stderr.splitlines() == [
        "warning: line 2: expected 3 numbers separated by commas (or a JSON array), got 'abc'",
        "warning: line 4: expected 3 values per frame, got 2",
        "warning: line 5: frame has NaN or infinite values",
        "warning: line 7: expected numbers, got '[1, \"x\", 3]'",
        "warning: line 8: expected numbers, got '[[1], [2], [3]]'",
        "stream ended: 4 frames, 5 bad lines skipped, 0 resets",
    ]
    got = np.array([r["prediction"] for r in jsonl(result.stdout)])
    # A skipped line neither advances nor resets the state.
    assert_close(model_units(spec, got), stream_expectation(spec, frames))


def test_run_stream_on_error_stop_exits_2_after_the_good_frames(make_bundle, tmp_path):
    spec = REGRESSION_SPEC
    frames = data_units(spec, (2, 3), seed=23)
    text = "\n".join([csv_line(frames[0]), csv_line(frames[1]), "1,2,x", csv_line(frames[0])]) + "\n"
    result = invoke("run", make_bundle(spec), "--stream", "--on-error", "stop", input=text)
    assert result.exit_code == 2
    assert isinstance(result.exception, SystemExit)
    assert result.stderr == "error: line 3: expected 3 numbers separated by commas (or a JSON array), got '1,2,x'\n"
    assert [r["frame"] for r in jsonl(result.stdout)] == [1, 2]


def test_run_stream_empty_line_resets_the_state(make_bundle):
    spec = REGRESSION_SPEC
    frames = data_units(spec, (3, 3), seed=24)
    block = "\n".join(csv_line(f) for f in frames)
    result = invoke("run", make_bundle(spec), "--stream", input=block + "\n\n" + block + "\n")
    assert_ok(result)
    records = jsonl(result.stdout)
    assert [(r["frame"], r["step"]) for r in records] == [(1, 1), (2, 2), (3, 3), (4, 1), (5, 2), (6, 3)]
    got = np.array([r["prediction"] for r in records])
    want = stream_expectation(spec, frames)
    assert_close(model_units(spec, got[:3]), want)
    assert_close(model_units(spec, got[3:]), want)
    assert result.stderr == "stream ended: 6 frames, 0 bad lines skipped, 1 resets\n"


def test_run_stream_reset_every_n_frames(make_bundle, tmp_path):
    spec = REGRESSION_SPEC
    frames = data_units(spec, (5, 3), seed=25)
    out = tmp_path / "stream.csv"
    text = "\n".join(csv_line(f) for f in frames) + "\n"
    result = invoke("run", make_bundle(spec), "--stream", "--reset-every", 2, "--output", out, input=text)
    assert_ok(result)
    assert result.stdout == ""
    assert result.stderr == "stream ended: 5 frames, 0 bad lines skipped, 2 resets\n"
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert list(rows[0]) == ["frame", "step", "warmup", "prediction_0", "prediction_1"]
    assert [(int(r["frame"]), int(r["step"])) for r in rows] == [(1, 1), (2, 2), (3, 1), (4, 2), (5, 1)]
    got = np.array([[float(r["prediction_0"]), float(r["prediction_1"])] for r in rows])
    for start in (0, 2, 4):  # each block of two frames starts from a zero state
        assert_close(model_units(spec, got[start : start + 2]), stream_expectation(spec, frames[start : start + 2]),
                     f"frames from {start + 1}")


def test_run_stream_classifier_csv_output(make_bundle):
    spec = CLASSIFIER_SPEC
    frames = data_units(spec, (4, 2), seed=26)
    logits = stream_expectation(spec, frames)
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    result = invoke("run", make_bundle(spec), "--stream", "--format", "csv",
                    input="\n".join(csv_line(f) for f in frames) + "\n")
    assert_ok(result)
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert list(rows[0]) == ["frame", "step", "warmup", "label", "class", "p_low", "p_mid", "p_high"]
    assert [r["label"] for r in rows] == [spec.labels[int(k)] for k in probabilities.argmax(axis=1)]
    assert_close([[float(r[f"p_{k}"]) for k in spec.labels] for r in rows], probabilities)


def test_run_stream_reads_frames_from_input_file(make_bundle, tmp_path):
    spec = REGRESSION_SPEC
    frames = data_units(spec, (3, 3), seed=27)
    (tmp_path / "frames.txt").write_text("\n".join(csv_line(f) for f in frames) + "\n")
    result = invoke("run", make_bundle(spec), "--stream", "--input", tmp_path / "frames.txt")
    assert_ok(result)
    got = np.array([r["prediction"] for r in jsonl(result.stdout)])
    assert_close(model_units(spec, got), stream_expectation(spec, frames))


# --------------------------------------------------------------------------------------------
# Bad input: one line, exit 2, no output file
# --------------------------------------------------------------------------------------------


@pytest.fixture
def bad_inputs(tmp_path) -> Path:
    """Input files for a 3-feature model, each wrong in one way."""
    folder = tmp_path / "inputs"
    folder.mkdir()
    good = data_units(REGRESSION_SPEC, (4, 6, 3), seed=31)
    np.save(folder / "good.npy", good)
    np.save(folder / "features.npy", good[:, :, :2])
    np.save(folder / "rank.npy", good[..., None])
    with_nan = good.copy()
    with_nan[1, 2, 0] = np.nan
    np.save(folder / "nan.npy", with_nan)
    write_csv_windows(folder / "nan.csv", with_nan)
    (folder / "width.csv").write_text("1,2,3,4,5,6,7\n1,2,3,4,5,6,7\n")
    (folder / "ragged.csv").write_text("1,2,3,4,5,6\n1,2,3\n")
    (folder / "empty.csv").write_text("")
    (folder / "header_only.csv").write_text("a,b,c\n")
    (folder / "x.txt").write_text("1,2,3\n")
    return folder


@pytest.mark.parametrize("name,message", [
    ("missing.npy", "missing.npy: no such file; check the path"),
    ("features.npy", "features.npy: expected input of shape (N, T, 3), got (4, 6, 2)"),
    ("rank.npy", "rank.npy: expected input of shape (N, T, 3), got (4, 6, 3, 1)"),
    ("nan.npy", "nan.npy: expected finite inputs, got nan at index (1, 2, 0) (1 NaN/inf in all)"),
    ("nan.csv", "nan.csv: expected finite numbers, got 'nan' on line 2, column 7"),
    ("width.csv", "width.csv: expected a multiple of 3 values per row (steps × 3 features, time-major), got 7 on line 1"),
    ("ragged.csv", "ragged.csv: expected 6 values per row (as on line 1), got 3 on line 2"),
    ("empty.csv", "empty.csv: file is empty"),
    ("header_only.csv", "header_only.csv: expected rows of numbers, got no data rows"),
    ("x.txt", "x.txt: expected one of .npy, .npz, .csv, .tsv, .ts, got extension '.txt'"),
])
@pytest.mark.parametrize("out_name", ["preds.jsonl", "preds.csv"])
def test_run_bad_input_file(make_bundle, bad_inputs, tmp_path, name, message, out_name):
    out = tmp_path / out_name
    result = invoke("run", make_bundle(REGRESSION_SPEC), "--input", bad_inputs / name, "--output", out)
    assert_one_line_error(result, 2, message)
    assert not out.exists()
    assert no_leftovers(tmp_path) == []


def test_run_without_input_or_stream(make_bundle):
    result = invoke("run", make_bundle(REGRESSION_SPEC))
    assert_one_line_error(result, 2, "give --input FILE with windows to predict, or --stream to read frames from stdin")


@pytest.mark.parametrize("command", ["run", "info"])
def test_missing_model(tmp_path, bad_inputs, command):
    args = ["--input", bad_inputs / "good.npy", "--output", tmp_path / "p.jsonl"] if command == "run" else []
    result = invoke(command, tmp_path / "nope", *args)
    assert_one_line_error(result, 2, f"{tmp_path / 'nope'}: no such bundle directory or model file")
    assert not (tmp_path / "p.jsonl").exists()


@pytest.mark.parametrize("command", ["run", "info"])
def test_a_text_file_named_onnx_is_not_a_model(tmp_path, bad_inputs, command):
    fake = tmp_path / "x.onnx"
    fake.write_text("this is not a model\n")
    args = ["--input", bad_inputs / "good.npy", "--output", tmp_path / "p.jsonl"] if command == "run" else []
    result = invoke(command, fake, *args)
    assert_one_line_error(result, 2, f"{fake}: onnxruntime ")
    assert "cannot load this model (" in result.stderr
    assert not (tmp_path / "p.jsonl").exists()


def test_a_folder_without_manifest_is_not_a_bundle(tmp_path, bad_inputs):
    folder = tmp_path / "folder"
    folder.mkdir()
    result = invoke("run", folder, "--input", bad_inputs / "good.npy")
    assert_one_line_error(result, 2, f"{folder}: not a bundle (expected manifest.json inside)")


def test_a_non_model_file_with_another_suffix(tmp_path, bad_inputs):
    result = invoke("run", bad_inputs / "x.txt", "--input", bad_inputs / "good.npy")
    assert_one_line_error(result, 2, "x.txt: not a model (expected a bundle folder, or a .onnx or .tflite file)")


@pytest.mark.parametrize("command", ["run", "run --stream", "validate"])
def test_a_bundle_file_that_fails_its_checksum(make_bundle, copy_bundle, bad_inputs, tmp_path, command):
    bundle = copy_bundle(make_bundle(REGRESSION_SPEC))
    data = bytearray((bundle / "model.onnx").read_bytes())
    data[-1] ^= 0xFF  # one flipped byte
    (bundle / "model.onnx").write_bytes(bytes(data))
    out = tmp_path / "p.jsonl"
    args = {"run": ["run", bundle, "--input", bad_inputs / "good.npy", "--output", out],
            "run --stream": ["run", bundle, "--stream", "--output", out],
            "validate": ["validate", bundle, "--json"]}[command]
    result = invoke(*args, input="1,2,3\n")
    assert_one_line_error(result, 2, f"{bundle / 'model.onnx'}: checksum mismatch (manifest sha256 ")
    assert "the file was changed or damaged: export the bundle again" in result.stderr
    assert not out.exists()


def test_a_bundle_with_a_missing_file(make_bundle, copy_bundle, bad_inputs):
    bundle = copy_bundle(make_bundle(REGRESSION_SPEC))
    (bundle / "model.step.onnx").unlink()
    result = invoke("run", bundle, "--stream", input="1,2,3\n")
    assert_one_line_error(result, 2, f"{bundle / 'model.step.onnx'}: listed in the manifest but missing from the bundle")
    assert_ok(invoke("run", bundle, "--input", bad_inputs / "good.npy"))  # the window graph still runs


def test_a_damaged_manifest(make_bundle, copy_bundle, bad_inputs):
    bundle = copy_bundle(make_bundle(REGRESSION_SPEC))
    (bundle / "manifest.json").write_text('{"spec": ')
    result = invoke("run", bundle, "--input", bad_inputs / "good.npy")
    assert_one_line_error(result, 2, f"{bundle / 'manifest.json'}: manifest is damaged (JSONDecodeError: ")
