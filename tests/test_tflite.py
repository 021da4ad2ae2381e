"""TFLite export and runtime: parity of every variant, streaming, sizes, precision report.

Skipped when the TFLite tool chain (``edgernn[tflite]``: ai-edge-litert, ai-edge-quantizer) is
not installed. Conversions are direct writes plus the quantizer: about a second for all eight
files of a model, so each model is converted once per module.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("ai_edge_litert")
pytest.importorskip("ai_edge_quantizer")

from edgernn.errors import BadInputError, ExportError, ModelFileError  # noqa: E402
from edgernn.export.tflite import file_name, tflite_variants, variant_name  # noqa: E402
from edgernn.export.tflite_quantize import PRECISIONS  # noqa: E402
from edgernn.parity import TOLERANCES, compare, probe_inputs, step_through  # noqa: E402
from edgernn.reference import model_forward  # noqa: E402
from edgernn.runtime.tflite_backend import TfliteBackend  # noqa: E402
from edgernn.spec import ModelSpec  # noqa: E402

SPECS = {
    "lstm": ModelSpec(cell="lstm", input_size=3, hidden_size=12, num_layers=2, output_size=2, window=6),
    "gru": ModelSpec(cell="gru", input_size=3, hidden_size=12, num_layers=2, output_size=2, window=6),
}
# Bounds measured on these models (max abs error vs the float64 reference over the cases below),
# with ~10x headroom: tighter than the provisional tolerances, so a real regression shows.
BOUNDS = {"fp32": 1e-5, "fp16": 2e-3, "int8-dynamic": 5e-2, "int8-static": 2e-1}
CASES = [(1, 1), (3, 6), (2, 18)]  # (batch, time): a single step, the window, 3x the window


def numpy_weights(spec: ModelSpec, seed: int) -> dict[str, np.ndarray]:
    """PyTorch-style uniform(-1/sqrt(H), 1/sqrt(H)) weights, without torch."""
    rng = np.random.default_rng(seed)
    H, G = spec.hidden_size, spec.gates
    bound = 1.0 / np.sqrt(H)
    u = lambda *shape: rng.uniform(-bound, bound, shape).astype(np.float32)  # noqa: E731
    weights = {}
    for l in range(spec.num_layers):
        in_size = spec.input_size if l == 0 else H
        weights |= {f"rnn.weight_ih_l{l}": u(G * H, in_size), f"rnn.weight_hh_l{l}": u(G * H, H),
                    f"rnn.bias_ih_l{l}": u(G * H), f"rnn.bias_hh_l{l}": u(G * H)}
    weights["head.weight"], weights["head.bias"] = u(spec.output_size, H), u(spec.output_size)
    return weights


@pytest.fixture(scope="module", params=sorted(SPECS))
def converted(request):
    spec = SPECS[request.param]
    weights = numpy_weights(spec, seed=3)
    calibration = probe_inputs(spec, 16, spec.window, seed=11)
    variants = {(v.graph, v.precision): v for v in tflite_variants(spec, weights, calibration=calibration,
                                                                     progress=False)}
    return spec, weights, variants


def _check(got: np.ndarray, want: np.ndarray, precision: str, what: str) -> None:
    """Within the precision's tolerance in ``edgernn.parity`` (when it has one) and within BOUNDS."""
    tolerance = TOLERANCES.get(precision)
    max_abs, _, _, passed = compare(got, want, tolerance) if tolerance else (
        float(np.abs(np.asarray(got, np.float64) - want).max()), 0.0, 0.0, True)
    assert passed, f"{precision} {what}: max abs {max_abs:.3g} exceeds {tolerance}"
    assert max_abs <= BOUNDS[precision], f"{precision} {what}: max abs {max_abs:.3g} > {BOUNDS[precision]}"


def _reference(spec, weights, x):
    y, rnn = model_forward(spec, weights, x)
    return {"y": y, "h_n": rnn.h_n, "c_n": rnn.c_n}


def test_every_variant_is_written_with_its_name_and_file(converted):
    spec, _, variants = converted
    assert set(variants) == {(g, p) for g in ("window", "step") for p in PRECISIONS}
    assert variants[("window", "fp32")].file == "model.tflite"
    assert variants[("step", "int8-static")].file == "model.step.int8-static.tflite"
    assert variants[("step", "int8-static")].name == "tflite-step-int8-static"
    assert file_name("window", "fp16") == "model.fp16.tflite" and variant_name("window", "fp16") == "tflite-window-fp16"
    state_names = ["h_out", "c_out"] if spec.has_cell_state else ["h_out"]
    assert [n for n, _ in variants[("step", "fp32")].outputs] == ["y", *state_names]


@pytest.mark.parametrize("precision", PRECISIONS)
def test_window_graph_matches_the_reference(converted, precision):
    spec, weights, variants = converted
    backend = TfliteBackend.from_bytes(variants[("window", precision)].data)
    assert backend.input_names == ["x"]
    for batch, length in CASES:  # one interpreter: inputs resized between calls
        x = probe_inputs(spec, batch, length, seed=5)
        got, want = backend.run({"x": x}), _reference(spec, weights, x)
        for name in ("y", "h_n", "c_n"):
            if want[name] is not None:
                _check(got[name], want[name], precision, f"{name} B={batch} T={length}")


@pytest.mark.parametrize("precision", PRECISIONS)
def test_stepping_the_step_graph_matches_the_reference_and_the_window_graph(converted, precision):
    spec, weights, variants = converted
    step = TfliteBackend.from_bytes(variants[("step", precision)].data)
    window = TfliteBackend.from_bytes(variants[("window", precision)].data)
    x = probe_inputs(spec, 3, 2 * spec.window, seed=8)
    ys, final = step_through(lambda x_t, state: step.run({"x_t": x_t, **state}), spec, x)
    want = _reference(spec, weights, x)
    # y at every step is the head on that step's top hidden state
    result = model_forward(spec, weights, x)[1]
    per_step = result.output @ weights["head.weight"].T.astype(np.float64) + weights["head.bias"]
    _check(ys, per_step, precision, "y at every step")
    whole = window.run({"x": x})
    # the window graph loops over this very step graph: the same numbers, not just close ones
    np.testing.assert_allclose(whole["y"], ys[:, -1], atol=1e-6)
    np.testing.assert_allclose(whole["h_n"], final["h_n"], atol=1e-6)
    _check(final["h_n"], want["h_n"], precision, "final h")


@pytest.mark.parametrize("precision", PRECISIONS)
def test_precision_report_reads_back_the_asked_dtypes(converted, precision):
    _, _, variants = converted
    for graph in ("window", "step"):
        report = variants[(graph, precision)].precision_report
        weights = [r for r in report if r["kind"] == "weight"]
        assert weights and all(r["ok"] for r in report), report
        assert {r["achieved"] for r in weights} == {
            {"fp32": "float32", "fp16": "float16", "int8-dynamic": "int8", "int8-static": "int8"}[precision]}


def test_reference_size_step_graph_is_the_weights_size_and_int8_shrinks_it():
    """2 layers, hidden 64, 8 features: the issue's reference model."""
    spec = ModelSpec(cell="lstm", input_size=8, hidden_size=64, num_layers=2, output_size=3, window=50)
    weights = numpy_weights(spec, seed=0)
    sizes = {(v.graph, v.precision): v.size
             for v in tflite_variants(spec, weights, ("fp32", "int8-dynamic"), progress=False)}
    weight_bytes = sum(w.nbytes for w in weights.values())
    assert weight_bytes <= sizes[("step", "fp32")] <= weight_bytes + 8_000
    assert sizes[("window", "fp32")] <= sizes[("step", "fp32")] + 8_000  # a loop, not T unrolled steps
    assert sizes[("step", "int8-dynamic")] <= 0.30 * sizes[("step", "fp32")]


def test_bare_file_carries_the_spec_in_its_metadata(converted):
    from edgernn.export.tflite_builder import read_metadata

    spec, _, variants = converted
    from edgernn.runtime.tflite_backend import tflite_metadata

    data = variants[("step", "int8-static")].data
    meta = read_metadata(data)
    assert ModelSpec.from_json(meta["edgernn.spec"]) == spec
    assert meta["edgernn.graph"] == "step" and meta["edgernn.precision"] == "int8-static"
    # the runtime's own reader (no schema package: tflite-runtime ships none) reads the same entries
    assert tflite_metadata(data) == meta
    assert tflite_metadata(variants[("window", "fp32")].data)["edgernn.graph"] == "window"
    assert tflite_metadata(b"not a flatbuffer") == {}


def test_bidirectional_and_unknown_precisions_are_refused():
    bi = ModelSpec(cell="lstm", input_size=3, hidden_size=4, bidirectional=True)
    with pytest.raises(ExportError, match="unidirectional"):
        tflite_variants(bi, {}, progress=False)
    with pytest.raises(ExportError, match="int4"):
        tflite_variants(SPECS["gru"], numpy_weights(SPECS["gru"], 0), ("int4",), progress=False)


def test_backend_errors_say_what_was_expected(converted, tmp_path):
    _, _, variants = converted
    backend = TfliteBackend.from_bytes(variants[("step", "fp32")].data)
    with pytest.raises(BadInputError, match="expected inputs x_t, h_in"):
        backend.run({"x": np.zeros((1, 3), np.float32)})
    bad = tmp_path / "broken.tflite"
    bad.write_bytes(b"not a flatbuffer")
    with pytest.raises(ModelFileError, match="cannot load"):
        TfliteBackend(bad)


def test_backend_runs_without_torch_or_tensorflow(converted, tmp_path):
    spec, _, variants = converted
    path = tmp_path / "model.tflite"
    path.write_bytes(variants[("window", "int8-static")].data)
    code = (
        "import sys, numpy as np\n"
        "from edgernn.runtime.tflite_backend import TfliteBackend\n"
        f"b = TfliteBackend({str(path)!r}, threads=1)\n"
        f"out = b.run({{'x': np.zeros((2, 5, {spec.input_size}), np.float32)}})\n"
        "assert out['y'].shape == (2, 2), out['y'].shape\n"
        "bad = [m for m in ('torch', 'tensorflow') if m in sys.modules]\n"
        "assert not bad, bad\n"
        "print(b.name, b.version)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
