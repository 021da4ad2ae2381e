"""`run --stream --mode sliding|stateful`: what each output means, the hop, and warm-up marks.

The expectation for sliding comes from another path: the window graph (``Model.predict``) on the
last T frames of the stream (fewer during warm-up). Stateful: the step graph carried from frame 1.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from click.testing import CliRunner

from helpers import CLASSIFIER_SPEC, REGRESSION_SPEC
from edgernn.cli import cli
from edgernn.runtime import load
from edgernn.runtime.stream import SlidingWindowSession

T = REGRESSION_SPEC.window  # 6


def frames_of(spec, n: int, seed: int) -> np.ndarray:
    norm = spec.normalization
    z = np.random.default_rng(seed).standard_normal((n, spec.input_size))
    return (np.asarray(norm.x_mean) + np.asarray(norm.x_std) * z).astype(np.float32)


def stream(bundle, frames, *args):
    text = "\n".join(",".join(repr(float(v)) for v in f) for f in frames) + "\n"
    result = CliRunner().invoke(cli, ["run", str(bundle), "--stream", *map(str, args)], input=text)
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def sliding_expectation(model, frames, n: int, window: int) -> np.ndarray:
    """``run`` on the last ``window`` frames up to frame ``n`` (1-based), or on all of them in warm-up."""
    return model.predict(frames[max(0, n - window) : n][None]).values[0]


def test_sliding_output_is_run_on_the_last_T_frames(make_bundle):
    bundle = make_bundle(REGRESSION_SPEC)
    frames = frames_of(REGRESSION_SPEC, 3 * T + 2, seed=1)
    records = stream(bundle, frames, "--mode", "sliding")
    model = load(bundle)
    assert [r["frame"] for r in records] == list(range(1, len(frames) + 1))
    assert [r["step"] for r in records] == [min(n, T) for n in range(1, len(frames) + 1)]
    assert [r["warmup"] for r in records] == [n < T for n in range(1, len(frames) + 1)]
    for r in records:
        np.testing.assert_allclose(r["prediction"], sliding_expectation(model, frames, r["frame"], T),
                                   rtol=1e-4, atol=1e-4, err_msg=f"frame {r['frame']}")


def test_auto_slides_for_a_model_trained_on_windows(make_bundle):
    bundle = make_bundle(REGRESSION_SPEC)
    frames = frames_of(REGRESSION_SPEC, 2 * T + 1, seed=2)
    assert stream(bundle, frames) == stream(bundle, frames, "--mode", "sliding")


@pytest.mark.parametrize("hop,window", [(3, T), (2, 5), (T + 3, T), (1, 1)])
def test_sliding_hop_and_window(make_bundle, hop, window):
    bundle = make_bundle(REGRESSION_SPEC)
    frames = frames_of(REGRESSION_SPEC, 4 * T + 1, seed=3)
    records = stream(bundle, frames, "--hop", hop, "--window", window)
    model = load(bundle)
    n_frames = len(frames)
    want_frames = [n for n in range(1, n_frames + 1) if (n - window) % hop == 0]
    assert [r["frame"] for r in records] == want_frames
    for r in records:
        assert r["warmup"] == (r["frame"] < window) and r["step"] == min(r["frame"], window)
        np.testing.assert_allclose(r["prediction"], sliding_expectation(model, frames, r["frame"], window),
                                   rtol=1e-4, atol=1e-4, err_msg=f"frame {r['frame']}")


def test_sliding_does_not_drift_on_a_constant_stream(make_bundle):
    bundle = make_bundle(REGRESSION_SPEC)
    frames = np.tile(frames_of(REGRESSION_SPEC, 1, seed=4), (5 * T, 1))
    records = stream(bundle, frames, "--mode", "sliding")
    full = np.array([r["prediction"] for r in records if not r["warmup"]])
    np.testing.assert_allclose(full, np.broadcast_to(full[0], full.shape), rtol=1e-5, atol=1e-5)


def test_stateful_carries_the_state_and_marks_warmup(make_bundle):
    bundle = make_bundle(REGRESSION_SPEC)
    frames = frames_of(REGRESSION_SPEC, 2 * T + 3, seed=5)
    records = stream(bundle, frames, "--mode", "stateful")
    session = load(bundle).stream()
    want = [session.step(f).values[0] for f in frames]
    np.testing.assert_allclose([r["prediction"] for r in records], want, rtol=1e-5, atol=1e-5)
    assert [r["step"] for r in records] == list(range(1, len(frames) + 1))
    assert [r["warmup"] for r in records] == [n < T for n in range(1, len(frames) + 1)]
    # past T frames, the stateful answer is not the window answer any more
    model = load(bundle)
    late = records[-1]
    assert not np.allclose(late["prediction"], sliding_expectation(model, frames, late["frame"], T), atol=1e-4)


def test_stateful_with_a_hop_answers_every_hop_frames(make_bundle):
    bundle = make_bundle(CLASSIFIER_SPEC)
    W = CLASSIFIER_SPEC.window
    frames = frames_of(CLASSIFIER_SPEC, 3 * W, seed=6)
    records = stream(bundle, frames, "--mode", "stateful", "--hop", 4)
    assert [r["frame"] for r in records] == [n for n in range(1, 3 * W + 1) if (n - W) % 4 == 0]
    session = load(bundle).stream()
    labels = [CLASSIFIER_SPEC.labels[int(session.step(f).classes[0])] for f in frames]
    assert [r["label"] for r in records] == [labels[r["frame"] - 1] for r in records]


def test_the_sliding_session_runs_one_step_call_per_frame(make_bundle):
    model = load(make_bundle(REGRESSION_SPEC))
    sliding = SlidingWindowSession(model.stream(), window=T, hop=2)
    calls = []
    step_raw = sliding.session.step_raw  # one call of the step graph (bound buffers or session.run)
    sliding.session.step_raw = lambda x_t: calls.append(x_t.shape) or step_raw(x_t)
    for f in frames_of(REGRESSION_SPEC, 10, seed=7):
        sliding.push(f)
    assert calls == [(3, REGRESSION_SPEC.input_size)] * 10  # ceil(6 / 2) copies, one call per frame


def test_sliding_needs_a_window(make_bundle):
    spec = dataclasses.replace(REGRESSION_SPEC, window=None)
    bundle = make_bundle(spec)
    result = CliRunner().invoke(cli, ["run", str(bundle), "--stream", "--mode", "sliding"], input="1,2,3\n")
    assert result.exit_code == 2
    assert result.stderr == "error: this model records no training window: give --window N for --mode sliding\n"
    # auto: no window known → stateful, nothing marked as warm-up
    records = stream(bundle, frames_of(spec, 3, seed=8))
    assert [(r["step"], r["warmup"]) for r in records] == [(1, False), (2, False), (3, False)]


def test_stream_options_without_stream_are_refused(make_bundle, tmp_path):
    x = tmp_path / "x.npy"
    np.save(x, frames_of(REGRESSION_SPEC, T, seed=9)[None])
    result = CliRunner().invoke(cli, ["run", str(make_bundle(REGRESSION_SPEC)), "--input", str(x), "--hop", "2"])
    assert result.exit_code == 2
    assert result.stderr == "error: --mode, --hop and --window apply to --stream\n"


def test_output_format_and_its_old_name(make_bundle, tmp_path):
    x = tmp_path / "x.npy"
    np.save(x, frames_of(REGRESSION_SPEC, T, seed=10)[None])
    bundle = str(make_bundle(REGRESSION_SPEC))
    new = CliRunner().invoke(cli, ["run", bundle, "--input", str(x), "--output-format", "csv"])
    old = CliRunner().invoke(cli, ["run", bundle, "--input", str(x), "--format", "csv"])
    assert new.exit_code == 0 and new.stdout == old.stdout and new.stdout.startswith("prediction_0,prediction_1\n")
    help_text = CliRunner().invoke(cli, ["run", "--help"]).stdout
    assert "--output-format" in help_text and "--format" not in help_text.replace("--output-format", "")


def test_python_api_load_predict_and_slide(make_bundle):
    import edgernn

    bundle = make_bundle(REGRESSION_SPEC)
    model = edgernn.load(bundle)
    assert isinstance(model, edgernn.Model)
    frames = frames_of(REGRESSION_SPEC, T + 2, seed=11)
    sliding = model.sliding(hop=2)
    answers = [sliding.push(f) for f in frames]
    n_answered = [n for n, a in enumerate(answers, start=1) if a is not None]
    assert n_answered == [n for n in range(1, T + 3) if (n - T) % 2 == 0]
    prediction, seen = answers[-1]
    assert seen == T
    np.testing.assert_allclose(prediction.values[0], model.predict(frames[-T:][None]).values[0], rtol=1e-4, atol=1e-4)
