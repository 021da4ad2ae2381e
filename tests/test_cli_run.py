"""The command line as a user runs it, through click's CliRunner: run (windows and --stream) and info;
exit codes, parsed --json, exact error text, and no partial output."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest

from helpers import (
    BIDIRECTIONAL_SPEC, CLASSIFIER_SPEC, REGRESSION_SPEC, assert_close, assert_ok, assert_one_line_error, data_units,
    invoke, jsonl, model_units, no_leftovers, random_weights, read_manifest_json, reference_per_step, reference_raw,
    write_csv_windows,
)
from edgernn.parity import TOLERANCES
from edgernn.runtime import load

FP32 = TOLERANCES["fp32"]


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
