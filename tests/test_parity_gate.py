"""The export parity gate judges what the model will see (issue 11, point 11): probes from the
model's own data decide, random and long probes are drift, the fp32 tolerance is never stricter
than PyTorch's own distance from the float64 reference, and --keep-passing writes what passes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import CLASSIFIER_SPEC, invoke, random_weights
from edgernn.parity import TOLERANCES, Tolerance, compare, window_parity
from edgernn.reference import model_forward

SPEC = CLASSIFIER_SPEC  # window 8


def exact_at_window_length(spec, weights, error: float):
    """A fake fp32 variant: the float64 reference on windows of the model's length, off by ``error`` otherwise."""
    def run(x):
        y, rnn = model_forward(spec, weights, x)
        out = {"y": y, "h_n": rnn.h_n, "c_n": rnn.c_n}
        off = 0.0 if x.shape[1] == spec.window else error
        return {k: np.asarray(v) + off for k, v in out.items() if v is not None}
    return run


def test_data_probes_decide_and_random_probes_are_drift():
    weights = random_weights(SPEC, 0)
    variant = {"fake": ("fp32", exact_at_window_length(SPEC, weights, error=0.05))}
    data = [np.random.default_rng(1).standard_normal((4, SPEC.window, SPEC.input_size)).astype(np.float32)]
    with_data = window_parity(SPEC, weights, variant, data_windows=data)["fake"]
    assert with_data.passed
    drift = [c for c in with_data.comparisons if not c.decides]
    assert {c.probe for c in drift} == {"random"} and {c.length for c in drift} == {1, 8, 24}
    assert max(c.max_abs for c in drift) == pytest.approx(0.05, rel=1e-6) and not all(c.passed for c in drift)
    assert with_data.to_dict()["drift"]["max_abs"] == pytest.approx(0.05, rel=1e-6)
    without = window_parity(SPEC, weights, variant)["fake"]  # no data: the random probes decide, as before
    assert not without.passed


def test_the_fp32_gate_is_never_stricter_than_pytorch_itself():
    tol = TOLERANCES["fp32"]
    want = np.zeros(4)
    got = np.full(4, 5 * tol.atol)
    assert not compare(got, want, tol)[3]
    assert compare(got, want, tol, floor=6 * tol.atol)[3]  # the float32 reference is itself this far off
    assert not compare(got, want, tol, floor=tol.atol)[3]

    weights = random_weights(SPEC, 0)
    fake = {"fake": ("fp32", exact_at_window_length(SPEC, weights, error=5 * tol.atol))}
    loose_torch = exact_at_window_length(SPEC, weights, error=6 * tol.atol)  # a "PyTorch" this far from float64
    report = window_parity(SPEC, weights, fake, floor_fn=loose_torch)["fake"]
    assert report.passed
    allowed = [c.allowed for c in report.comparisons if c.length != SPEC.window]
    assert allowed and all(a == pytest.approx(6 * tol.atol) for a in allowed)
    tight_torch = exact_at_window_length(SPEC, weights, error=0.0)
    assert not window_parity(SPEC, weights, fake, floor_fn=tight_torch)["fake"].passed


def test_the_floor_applies_to_fp32_only():
    weights = random_weights(SPEC, 0)
    fake = {"fake": ("fp16", exact_at_window_length(SPEC, weights, error=1.0))}
    loose = exact_at_window_length(SPEC, weights, error=2.0)
    assert not window_parity(SPEC, weights, fake, floor_fn=loose)["fake"].passed


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    from edgernn.datasource import DataSource
    from edgernn.nn.train import TrainConfig, train

    out = tmp_path_factory.mktemp("gate") / "run"
    train(DataSource(task="sum", n=200), TrainConfig(epochs=1, hidden_size=8), out, progress=False)
    return out


def test_keep_passing_writes_the_passing_variants_and_lists_the_refused(small_run, tmp_path, monkeypatch):
    monkeypatch.setitem(TOLERANCES, "int8-dynamic", Tolerance(atol=0.0, rtol=0.0, scale="range"))  # cannot pass
    result = invoke("export", small_run, "--out", tmp_path / "all", "--quantize", "fp16,int8-dynamic")
    assert result.exit_code == 1 and "--keep-passing writes the variants that pass" in result.stderr
    assert not (tmp_path / "all").exists()
    result = invoke("export", small_run, "--out", tmp_path / "kept", "--quantize", "fp16,int8-dynamic",
                    "--keep-passing", "--json")
    assert result.exit_code == 0, result.stderr
    d = json.loads(result.stdout)
    assert {r["variant"] for r in d["refused"]} == {"onnx-window-int8-dynamic", "onnx-step-int8-dynamic"}
    assert {v["name"] for v in d["variants"]} == {"onnx-window-fp32", "onnx-step-fp32", "onnx-window-fp16",
                                                  "onnx-step-fp16"}
    manifest = json.loads((tmp_path / "kept" / "manifest.json").read_text())
    assert [r["variant"] for r in manifest["refused"]] == ["onnx-window-int8-dynamic", "onnx-step-int8-dynamic"]
    assert not list((tmp_path / "kept").glob("*int8*"))
    monkeypatch.undo()
    assert invoke("validate", tmp_path / "kept").exit_code == 0


def test_keep_passing_still_refuses_a_bundle_whose_reference_fails(small_run, tmp_path, monkeypatch):
    monkeypatch.setitem(TOLERANCES, "fp32", Tolerance(atol=0.0, rtol=0.0))
    import edgernn.validate as validate

    monkeypatch.setattr(validate, "_has_torch", lambda: False)  # no PyTorch floor to rescue it
    result = invoke("export", small_run, "--out", tmp_path / "b", "--keep-passing")
    assert result.exit_code == 1 and "parity check failed, bundle not written (onnx-window-fp32" in result.stderr
