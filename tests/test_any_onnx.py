"""Any ONNX file with RNN nodes: `edgernn run`, `info`, `bench` and `validate` without edgernn metadata.

The acceptance set is ONNX's own backend test vectors for LSTM/GRU/RNN (tools/setup_env.sh unpacks
them from the onnx 1.22 wheel into .cache/onnx-node), plus small vectors written with onnx.helper for
what those leave out (tests/onnx_rnn_vectors.py). Every vector onnxruntime can load passes `edgernn
run` (outputs equal to the expected ones) and `edgernn validate`; the layout=1 ones get one clear line
from `run` and are validated as layout=0 between Transposes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from onnx_rnn_vectors import HELPER_VECTORS, node_dirs, read_vector, rnn_model  # noqa: E402

from edgernn.parity import TOLERANCES  # noqa: E402
from edgernn.reference_onnx import onnx_rnn  # noqa: E402
from helpers import invoke

FP32 = TOLERANCES["fp32"]
NODE_DIRS = node_dirs()
needs_vectors = pytest.mark.skipif(not NODE_DIRS, reason="ONNX backend node vectors not found: run tools/setup_env.sh")


def one_line(result, code):
    assert result.exit_code == code, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def batchwise(d: Path) -> bool:
    return any(a.name == "layout" and a.i == 1 for a in onnx.load(str(d / "model.onnx")).graph.node[0].attribute)


def ort_outputs(model_path: Path, feeds) -> dict:
    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))


@needs_vectors
def test_the_acceptance_set_is_all_there():
    names = {d.name for d in NODE_DIRS}
    assert len(names) == 12 and {"test_lstm_with_peepholes", "test_gru_seq_length", "test_rnn_seq_length",
                                 "test_simple_rnn_batchwise", "test_lstm_batchwise"} <= names


@needs_vectors
@pytest.mark.parametrize("d", NODE_DIRS, ids=lambda d: d.name)
def test_backend_vector_run_and_validate(d, tmp_path):
    inputs, expected = read_vector(d)
    np.savez(tmp_path / "in.npz", **inputs)
    model = d / "model.onnx"
    run = invoke("run", model, "--input", tmp_path / "in.npz", "--output", tmp_path / "out.npz")
    if batchwise(d):  # onnxruntime does not implement layout=1: one clear line
        line = one_line(run, 2)
        assert "node has layout=1 (batch-first), which onnxruntime does not implement" in line
        node = onnx.load(str(model)).graph.node[0]  # the reference itself, in layout 1, against the vector
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        got = onnx_rnn(node.op_type, [inputs.get(n) for n in node.input], attrs)
        for (name, want), value in zip(expected.items(), got):
            np.testing.assert_allclose(value, want, atol=FP32.atol, rtol=FP32.rtol, err_msg=name)
    else:
        assert run.exit_code == 0, run.output
        with np.load(tmp_path / "out.npz") as out:
            assert sorted(out.files) == sorted(expected)
            for name, want in expected.items():
                np.testing.assert_allclose(out[name], want, atol=FP32.atol, rtol=FP32.rtol, err_msg=name)
    validate = invoke("validate", model, "--input", tmp_path / "in.npz", "--json")
    assert validate.exit_code == 0, validate.output
    report = json.loads(validate.stdout)
    assert report["passed"] and {c["output"] for c in report["checks"]} == set(expected)
    assert report["layout_1_run_as_layout_0"] == (["LSTM#0"] if "lstm" in d.name else
                                                  ["GRU#0"] if "gru" in d.name else ["RNN#0"]) * batchwise(d)


@pytest.mark.parametrize("name", list(HELPER_VECTORS))
def test_helper_vectors_validate_and_run_in_full_precision(name, tmp_path):
    op, options = HELPER_VECTORS[name]
    model, feeds = rnn_model(op, **options)
    onnx.save(model, tmp_path / "m.onnx")
    np.savez(tmp_path / "in.npz", **feeds)
    validate = invoke("validate", tmp_path / "m.onnx", "--input", tmp_path / "in.npz", "--json")
    assert validate.exit_code == 0, validate.output
    checks = json.loads(validate.stdout)["checks"]
    assert [c["slot"] for c in checks] == (["Y", "Y_h", "Y_c"] if op == "LSTM" else ["Y", "Y_h"])
    drawn = invoke("validate", tmp_path / "m.onnx")  # inputs drawn, sequence_lens within the length
    assert drawn.exit_code == 0, drawn.output
    run = invoke("run", tmp_path / "m.onnx", "--input", tmp_path / "in.npz")
    if options.get("layout"):
        assert "layout=1" in one_line(run, 2)
        return
    assert run.exit_code == 0, run.output
    got = json.loads(run.stdout)
    for out_name, value in ort_outputs(tmp_path / "m.onnx", feeds).items():  # every digit onnxruntime gave
        np.testing.assert_array_equal(np.array(got[out_name], np.float32), value)


def test_validate_names_the_node_and_output_that_differ(tmp_path, monkeypatch):
    import edgernn.validate_graph as vg

    model, feeds = rnn_model("GRU", direction="bidirectional", linear_before_reset=1)
    onnx.save(model, tmp_path / "m.onnx")

    def off_by_a_bit(op, inputs, attrs):
        y, y_h = onnx_rnn(op, inputs, attrs)
        return [y, y_h + 0.01]

    monkeypatch.setattr(vg, "onnx_rnn", off_by_a_bit)
    line = one_line(invoke("validate", tmp_path / "m.onnx"), 1)
    assert line == (f"error: {tmp_path / 'm.onnx'}: node 'gru_node' (GRU) output Y_h 'Y_h' differs from the NumPy "
                    "reference: max abs 0.01")


def test_validate_checks_every_node_of_an_exported_module(tmp_path):
    """A file edgernn wrote (two stacked ONNX LSTM nodes) is checked node by node too."""
    import torch

    import edgernn

    sys.path.insert(0, str(Path(__file__).parent))
    import byom_modules as bm

    torch.manual_seed(0)
    edgernn.export(bm.LSTMRegressor(), torch.randn(2, 6, bm.FEATURES), out=tmp_path / "b")
    result = invoke("validate", tmp_path / "b" / "model.onnx", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert len({c["node"] for c in report["checks"]}) == 2 and report["drawn_inputs"] == ["x"]


def test_run_feeds_by_name_and_refuses_what_it_cannot_do(tmp_path):
    model, feeds = rnn_model("LSTM", seq_lens=True, initial=True)
    onnx.save(model, tmp_path / "m.onnx")
    np.savez(tmp_path / "partial.npz", X=feeds["X"], extra=feeds["X"])
    line = one_line(invoke("run", tmp_path / "m.onnx", "--input", tmp_path / "partial.npz"), 2)
    assert "expected arrays named X, sequence_lens, initial_h, initial_c" in line
    assert "missing sequence_lens, initial_h, initial_c; unknown extra" in line
    np.save(tmp_path / "x.npy", feeds["X"])
    assert "has 4 inputs" in one_line(invoke("run", tmp_path / "m.onnx", "--input", tmp_path / "x.npy"), 2)
    np.savez(tmp_path / "in.npz", **feeds)
    assert "csv cannot hold named tensors" in one_line(
        invoke("run", tmp_path / "m.onnx", "--input", tmp_path / "in.npz", "--output", tmp_path / "o.csv"), 2)
    assert "--stream needs a step graph written by edgernn" in one_line(
        invoke("run", tmp_path / "m.onnx", "--stream"), 2)
    np.savez(tmp_path / "bad.npz", **{**feeds, "X": feeds["X"][0]})
    assert "input 'X' expects rank 3 (4, 3, 2), got shape (3, 2)" in one_line(
        invoke("run", tmp_path / "m.onnx", "--input", tmp_path / "bad.npz"), 2)
    # a single input from .npy: written by name, rounded only when asked
    single, one_feed = rnn_model("GRU")
    onnx.save(single, tmp_path / "g.onnx")
    np.save(tmp_path / "gx.npy", one_feed["X"])
    out = invoke("run", tmp_path / "g.onnx", "--input", tmp_path / "gx.npy", "--precision", "3")
    assert out.exit_code == 0, out.output
    got = json.loads(out.stdout)
    want = ort_outputs(tmp_path / "g.onnx", one_feed)
    np.testing.assert_array_equal(np.array(got["Y_h"]), np.round(want["Y_h"].astype(np.float64), 3))


def test_info_and_bench_on_a_foreign_file(tmp_path):
    model, feeds = rnn_model("GRU", direction="bidirectional", linear_before_reset=1)
    onnx.save(model, tmp_path / "g.onnx")
    info = invoke("info", tmp_path / "g.onnx", "--json")
    assert info.exit_code == 0, info.output
    nodes = json.loads(info.stdout)["rnn_nodes"]
    assert nodes[0]["op"] == "GRU" and nodes[0]["direction"] == "bidirectional" and nodes[0]["linear_before_reset"] == 1
    bench = invoke("bench", tmp_path / "g.onnx", "--repeat", "20", "--json")
    assert bench.exit_code == 0, bench.output
    d = json.loads(bench.stdout)
    assert d["inputs"] == {"X": [4, 3, 2]} and d["latency_us"]["n"] == 20
    batch_first, _ = rnn_model("LSTM", layout=1)
    onnx.save(batch_first, tmp_path / "l1.onnx")
    text = invoke("info", tmp_path / "l1.onnx")
    assert text.exit_code == 0, text.output
    assert "LSTM 'lstm_node': forward, hidden 3, layout 1" in text.stdout
    assert "onnxruntime does not implement" in text.stdout


def test_foreign_run_info_bench_do_not_import_torch(tmp_path):
    from helpers import HEAVY, SCRIPT, result_of, run_python

    model, feeds = rnn_model("LSTM", seq_lens=True)
    onnx.save(model, tmp_path / "m.onnx")
    np.savez(tmp_path / "in.npz", **feeds)
    commands = [("run", ["run", str(tmp_path / "m.onnx"), "--input", str(tmp_path / "in.npz")], None),
                ("info", ["info", str(tmp_path / "m.onnx")], None),
                ("bench", ["bench", str(tmp_path / "m.onnx"), "--input", str(tmp_path / "in.npz"), "--repeat", "5"],
                 None)]
    proc = run_python(SCRIPT.format(heavy=HEAVY, commands=commands))
    assert proc.returncode == 0, proc.stderr
    assert result_of(proc) == {"exits": {"run": 0, "info": 0, "bench": 0}, "heavy": []}


def test_layout_1_is_one_line_from_a_fresh_process(tmp_path):
    """onnxruntime's own log lines (written by C++ to stderr) do not follow the one-line error."""
    import subprocess

    model, feeds = rnn_model("GRU", layout=1)
    onnx.save(model, tmp_path / "g.onnx")
    np.savez(tmp_path / "in.npz", **feeds)
    proc = subprocess.run([sys.executable, "-m", "edgernn", "run", str(tmp_path / "g.onnx"), "--input",
                           str(tmp_path / "in.npz")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "its GRU node has layout=1 (batch-first)" in proc.stderr


def test_validate_fails_on_a_graph_output_that_is_not_finite(tmp_path):
    """As Polygraphy's --validate: NaN or inf in an output is a failure, named."""
    from onnx import TensorProto, helper

    model, feeds = rnn_model("RNN")
    g = model.graph
    g.node.append(helper.make_node("Log", ["Y_h"], ["log_h"]))  # log of negative values: NaN
    g.output.append(helper.make_tensor_value_info("log_h", TensorProto.FLOAT, [None, None, None]))
    onnx.save(model, tmp_path / "m.onnx")
    np.savez(tmp_path / "in.npz", **feeds)
    line = one_line(invoke("validate", tmp_path / "m.onnx", "--input", tmp_path / "in.npz"), 1)
    assert line == f"error: {tmp_path / 'm.onnx'}: graph output 'log_h' holds NaN or inf"


@pytest.mark.parametrize("name", ["lstm_input_forget_clip", "gru_activations_clip"])
def test_the_clip_vectors_do_clip(name):
    """Without clip the reference differs from onnxruntime on these vectors: clip is exercised, not idle."""
    op, options = HELPER_VECTORS[name]
    model, feeds = rnn_model(op, **options)
    node = model.graph.node[0]
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    values = {**{i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}, **feeds}
    inputs = [values.get(n) if n else None for n in node.input]
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = session.run(None, feeds)
    clipped = onnx_rnn(op, inputs, attrs)
    unclipped = onnx_rnn(op, inputs, {**attrs, "clip": None})
    np.testing.assert_allclose(clipped[0], got[0], atol=FP32.atol, rtol=FP32.rtol)
    assert np.abs(unclipped[0] - got[0]).max() > 100 * FP32.atol
