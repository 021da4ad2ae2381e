"""Streaming: the step graph's invariant (stepping it = the window graph), its one fused op per layer and
manifest entry, bidirectional refusal, and the StreamSession API (step, reset, B streams,
normalisation, classification)."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from click.testing import CliRunner

from helpers import BIDIRECTIONAL_SPEC, CLASSIFIER_SPEC, REGRESSION_SPEC, random_weights
from edgernn.errors import BadInputError
from edgernn.parity import TOLERANCES
from edgernn.reference import model_forward
from edgernn.runtime import load
from edgernn.spec import ModelSpec

FP32 = TOLERANCES["fp32"]
# What the step graph may be made of: one fused one-step LSTM/GRU node per layer plus shape plumbing
# and the head, never a loop (Scan/Loop/If).
STEP_OPS = {"LSTM", "GRU", "Split", "Concat", "Unsqueeze", "Squeeze", "Identity", "Gemm"}


def assert_close(got, want, what: str) -> None:
    np.testing.assert_allclose(np.asarray(got, np.float64), np.asarray(want, np.float64),
                               atol=FP32.atol, rtol=FP32.rtol, err_msg=what)


def step_spec(cell: str, layers: int) -> ModelSpec:
    return ModelSpec(cell=cell, input_size=3, hidden_size=6, num_layers=layers, output_size=2, window=7)


def session(path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def run_named(sess: ort.InferenceSession, feeds: dict) -> dict[str, np.ndarray]:
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))


def manifest_of(bundle) -> dict:
    return json.loads((bundle / "manifest.json").read_text())


# --------------------------------------------------------------------------------------------
# The step graph invariant, driven only by what the manifest says about the state
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("length", [1, 7, 200])
@pytest.mark.parametrize("batch", [1, 5])
@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_stepping_the_step_graph_equals_the_window_graph(make_bundle, cell, layers, batch, length):
    spec = step_spec(cell, layers)
    bundle = make_bundle(spec, seed=layers)
    manifest = manifest_of(bundle)
    assert manifest["streaming"]["supported"] is True
    step_variant = next(v for v in manifest["variants"] if v["graph"] == "step")
    tensors = step_variant["state"]["tensors"]
    step, window = session(bundle / step_variant["file"]), session(bundle / "model.onnx")

    x = np.random.default_rng([layers, batch, length]).standard_normal((batch, length, 3)).astype(np.float32)
    state = {}
    for t in tensors:
        assert t["init"] == "zeros"
        state[t["input"]] = np.zeros([batch if d == "batch" else d for d in t["shape"]], np.float32)
    ys = []
    for i in range(length):
        out = run_named(step, {"x_t": x[:, i], **state})
        ys.append(out["y"])
        state = {t["input"]: out[t["output"]] for t in tensors}

    whole = run_named(window, {"x": x})
    assert_close(ys[-1], whole["y"], "last step's y vs window graph y")
    assert_close(state["h_in"], whole["h_n"], "final h vs window graph h_n")
    if cell == "lstm":
        assert_close(state["c_in"], whole["c_n"], "final c vs window graph c_n")
    else:
        assert "c_n" not in whole and "c_in" not in state

    # Every step's y is the head on that step's hidden state (NumPy reference, float64).
    weights = random_weights(spec, layers)
    _, rnn = model_forward(spec, weights, x)
    y_every_step = rnn.output @ weights["head.weight"].astype(np.float64).T + weights["head.bias"]
    assert_close(np.stack(ys, axis=1), y_every_step, "y at every step vs numpy reference")


@pytest.mark.parametrize("layers", [1, 3])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_step_graph_is_one_fused_node_per_layer_and_a_described_state(make_bundle, cell, layers):
    spec = step_spec(cell, layers)
    bundle = make_bundle(spec, seed=layers)
    model = onnx.load(str(bundle / "model.step.onnx"))
    ops = [n.op_type for n in model.graph.node]
    assert set(ops) <= STEP_OPS, set(ops) - STEP_OPS
    assert ops.count(cell.upper()) == layers and "LSTM GRU".replace(cell.upper(), "").strip() not in ops

    manifest = manifest_of(bundle)
    pairs = [("h_in", "h_out")] + ([("c_in", "c_out")] if cell == "lstm" else [])
    for described in (manifest["streaming"]["tensors"], manifest["variants"][1]["state"]["tensors"]):
        assert [(t["input"], t["output"]) for t in described] == pairs
        assert all(t["shape"] == [layers, "batch", 6] and t["init"] == "zeros" for t in described)
    names = [i.name for i in session(bundle / "model.step.onnx").get_inputs()]
    assert names == ["x_t"] + [i for i, _ in pairs]


# --------------------------------------------------------------------------------------------
# Bidirectional models cannot stream
# --------------------------------------------------------------------------------------------


def test_bidirectional_export_writes_no_step_graph_and_says_why(make_bundle):
    bundle = make_bundle(BIDIRECTIONAL_SPEC)
    manifest = manifest_of(bundle)
    assert not (bundle / "model.step.onnx").exists()
    assert [v["graph"] for v in manifest["variants"]] == ["window"]
    assert manifest["streaming"]["supported"] is False
    assert "bidirectional" in manifest["streaming"]["reason"]
    with pytest.raises(BadInputError, match="cannot stream: bidirectional"):
        load(bundle).stream()


def test_run_stream_refuses_a_bidirectional_bundle_in_one_line(make_bundle, tmp_path):
    from edgernn.cli import cli

    bundle = make_bundle(BIDIRECTIONAL_SPEC)
    out = tmp_path / "preds.jsonl"
    result = CliRunner().invoke(cli, ["run", str(bundle), "--stream", "--output", str(out)], input="1,2,3\n")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == ("error: this model cannot stream: bidirectional: the backward direction needs the "
                             "whole window, so it cannot stream\n")
    assert not out.exists()


# --------------------------------------------------------------------------------------------
# StreamSession
# --------------------------------------------------------------------------------------------


def data_units(spec: ModelSpec, shape, seed: int) -> np.ndarray:
    """Inputs in the data's own units: around x_mean, spread by x_std."""
    norm = spec.normalization
    z = np.random.default_rng(seed).standard_normal(shape)
    return (np.asarray(norm.x_mean) + np.asarray(norm.x_std) * z).astype(np.float32)


def reference_raw_per_step(spec: ModelSpec, weights, frames: np.ndarray) -> np.ndarray:
    """Head output at every step, from NumPy arithmetic on normalised frames: (B, T, O)."""
    norm = spec.normalization
    z = (frames.astype(np.float64) - np.asarray(norm.x_mean)) / np.asarray(norm.x_std)
    _, rnn = model_forward(spec, weights, z)
    return rnn.output @ weights["head.weight"].astype(np.float64).T + weights["head.bias"]


def to_model_units(spec: ModelSpec, values: np.ndarray) -> np.ndarray:
    """De-normalised predictions back to the head's units, to compare within the fp32 tolerance."""
    norm = spec.normalization
    return (np.asarray(values) - np.asarray(norm.y_mean)) / np.asarray(norm.y_std)


def test_stream_applies_normalisation_and_matches_predict_on_every_prefix(make_bundle):
    spec = REGRESSION_SPEC
    model = load(make_bundle(spec))
    frames = data_units(spec, (10, 3), seed=1)  # one stream, 10 frames
    want = reference_raw_per_step(spec, random_weights(spec, 0), frames[None])[0]  # (T, O)
    stream = model.stream()
    for t in range(len(frames)):
        got = stream.step(frames[t])
        assert got.values.shape == (1, 2)
        assert_close(to_model_units(spec, got.values), want[t : t + 1], f"stream vs numpy at step {t}")
        # The last step's prediction of a stream over window W equals predict(W).
        assert_close(to_model_units(spec, got.values), to_model_units(spec, model.predict(frames[None, : t + 1]).values),
                     f"stream vs predict at step {t}")
    assert stream.steps == 10


def test_b_streams_together_equal_each_stream_alone(make_bundle):
    spec = REGRESSION_SPEC
    model = load(make_bundle(spec))
    a, b, c = (data_units(spec, (12, 3), seed=s) for s in (2, 3, 4))
    together = model.stream(batch=3)
    alone = [model.stream() for _ in range(3)]
    for t in range(12):
        joint = together.step(np.stack([a[t], b[t], c[t]])).values
        for k, (frames, s) in enumerate(zip((a, b, c), alone)):
            assert_close(joint[k], s.step(frames[t]).values[0], f"stream {k} at step {t}")


def test_onnxruntime_stream_reuses_two_bound_state_buffers_and_matches_plain_runs(make_bundle):
    """The state is handed from output to input through two buffers bound once (no per-step arrays),
    and the result is what feeding the state back through session.run gives."""
    spec = REGRESSION_SPEC
    bundle = make_bundle(spec)
    s = load(bundle).stream(batch=2)
    plain = session(bundle / "model.step.onnx")
    state = {n: np.zeros((spec.num_layers, 2, spec.hidden_size), np.float32) for n in ("h_in", "c_in")}
    frames = np.random.default_rng(8).standard_normal((6, 2, 3)).astype(np.float32)
    seen = set()
    for t, frame in enumerate(frames):
        seen |= {id(v) for v in s.state.values()}
        y = s.step_raw(frame)
        y_plain, h, c = plain.run(["y", "h_out", "c_out"], {"x_t": frame, **state})
        state = {"h_in": h, "c_in": c}
        np.testing.assert_array_equal(y, y_plain, err_msg=f"step {t}")
        np.testing.assert_array_equal(s.state["h_in"], h, err_msg=f"state after step {t}")
    assert len(seen) == 4  # h and c, two buffers each, for all six steps
    with pytest.raises(BadInputError, match=r"expected a frame of shape \(2, 3\), got \(3,\)"):
        s.step_raw(frames[0, 0])


def test_reset_starts_every_stream_afresh(make_bundle):
    spec = REGRESSION_SPEC
    model = load(make_bundle(spec))
    frames = data_units(spec, (6, 3), seed=5)
    fresh = [model.stream().step(frames[0]).values]
    s = model.stream()
    first = s.step(frames[0]).values
    s.step(frames[1])
    assert not np.allclose(s.step(frames[0]).values, first, atol=FP32.atol, rtol=FP32.rtol)  # the state counts
    s.reset()
    assert s.steps == 0
    assert all(np.all(v == 0) for v in s.state.values())
    assert_close(s.step(frames[0]).values, fresh[0], "after reset")


def test_reset_of_one_stream_leaves_the_others_alone(make_bundle):
    spec = REGRESSION_SPEC
    model = load(make_bundle(spec))
    a, b = data_units(spec, (8, 3), seed=6), data_units(spec, (8, 3), seed=7)
    s = model.stream(batch=2)
    only_a = model.stream()
    for t in range(4):
        s.step(np.stack([a[t], b[t]]))
        only_a.step(a[t])
    s.reset(stream=1)
    fresh_b = model.stream()
    for t in range(4, 8):
        joint = s.step(np.stack([a[t], b[t]])).values
        assert_close(joint[0], only_a.step(a[t]).values[0], f"untouched stream at step {t}")
        assert_close(joint[1], fresh_b.step(b[t]).values[0], f"reset stream at step {t}")


def test_classifier_stream_gives_probabilities_and_labels(make_bundle):
    spec = CLASSIFIER_SPEC
    model = load(make_bundle(spec))
    frames = data_units(spec, (9, 2), seed=8)
    logits = reference_raw_per_step(spec, random_weights(spec, 0), frames[None])[0]  # (T, 3)
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    s = model.stream()
    for t in range(9):
        p = s.step(frames[t])
        assert_close(p.values[0], probabilities[t], f"probabilities at step {t}")
        record = p.records()[0]
        assert record["label"] == spec.labels[int(np.argmax(probabilities[t]))]
        assert list(record["probabilities"]) == list(spec.labels)


def test_step_rejects_a_bad_frame_and_keeps_its_state(make_bundle):
    model = load(make_bundle(REGRESSION_SPEC))
    s = model.stream()
    s.step([1.0, -2.0, 0.5])
    before = {k: v.copy() for k, v in s.state.items()}
    with pytest.raises(BadInputError, match=r"^expected a frame of shape \(1, 3\), got \(2,\)$"):
        s.step([1.0, 2.0])
    with pytest.raises(BadInputError, match=r"^expected a frame of shape \(1, 3\), got \(2, 3\)$"):
        s.step(np.zeros((2, 3)))
    with pytest.raises(BadInputError, match="^frame has NaN or infinite values$"):
        s.step([1.0, float("nan"), 0.5])
    assert s.steps == 1
    assert all(np.array_equal(before[k], s.state[k]) for k in before)


def test_bare_step_file_streams_and_bare_window_file_refuses(make_bundle):
    bundle = make_bundle(REGRESSION_SPEC)
    frames = data_units(REGRESSION_SPEC, (5, 3), seed=9)
    from_bundle, from_file = load(bundle).stream(), load(bundle / "model.step.onnx").stream()
    for t in range(5):
        assert_close(from_file.step(frames[t]).values, from_bundle.step(frames[t]).values, f"step {t}")
    with pytest.raises(BadInputError, match="a window graph cannot stream; use the bundle or its .step.onnx file"):
        load(bundle / "model.onnx").stream()
