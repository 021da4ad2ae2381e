"""Export parity: the exported window graph (onnxruntime) vs torch.nn.LSTM/GRU vs the NumPy reference,
swept over cell × layers × direction × batch × length; and the bundle on disk (checksums, sizes,
ONNX IR version and opset, embedded spec)."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from helpers import BIDIRECTIONAL_SPEC, CLASSIFIER_SPEC, REGRESSION_SPEC, random_weights
from edgernn.parity import TOLERANCES
from edgernn.reference import model_forward
from edgernn.spec import ModelSpec

torch = pytest.importorskip("torch")

FP32 = TOLERANCES["fp32"]
WINDOW = 5
BATCHES = (1, 3, 16)
LENGTHS = (1, WINDOW, 3 * WINDOW)
CONFIGS = [(cell, layers, bidi) for cell in ("lstm", "gru") for layers in (1, 2) for bidi in (False, True)]


def sweep_spec(cell: str, layers: int, bidirectional: bool) -> ModelSpec:
    return ModelSpec(cell=cell, input_size=3, hidden_size=5, num_layers=layers, bidirectional=bidirectional,
                     output_size=2, window=WINDOW)


def assert_close(got, want, what: str) -> None:
    np.testing.assert_allclose(np.asarray(got, np.float64), np.asarray(want, np.float64),
                               atol=FP32.atol, rtol=FP32.rtol, err_msg=what)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(cell, layers, bidirectional) → (spec, torch model, weights, onnxruntime session of model.onnx)."""
    from edgernn.export import export_bundle
    from edgernn.nn import build_model

    root = tmp_path_factory.mktemp("sweep")
    cache = {}

    def get(cell, layers, bidirectional):
        key = (cell, layers, bidirectional)
        if key not in cache:
            spec = sweep_spec(*key)
            model = build_model(spec, seed=sum(map(ord, cell)) + 10 * layers + bidirectional).eval()
            weights = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
            out = root / f"{cell}-{layers}-{int(bidirectional)}"
            export_bundle(spec, weights, out, validate=False)  # the test is the validation
            session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
            cache[key] = (spec, model, weights, session)
        return cache[key]

    return get


def torch_outputs(model, x: np.ndarray) -> dict[str, np.ndarray]:
    """torch.nn.LSTM/GRU (batch first) and the Linear head on the last step."""
    with torch.no_grad():
        out, state = model.rnn(torch.from_numpy(x))
        h_n, c_n = state if isinstance(state, tuple) else (state, None)
        y = model.head(out[:, -1])
    result = {"y": y.numpy(), "h_n": h_n.numpy()}
    if c_n is not None:
        result["c_n"] = c_n.numpy()
    return result


@pytest.mark.parametrize("length", LENGTHS)
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("cell,layers,bidirectional", CONFIGS)
def test_window_graph_matches_torch_and_reference(exported, cell, layers, bidirectional, batch, length):
    spec, model, weights, session = exported(cell, layers, bidirectional)
    x = np.random.default_rng([batch, length, layers]).standard_normal((batch, length, 3)).astype(np.float32)

    want_torch = torch_outputs(model, x)
    y_ref, rnn = model_forward(spec, weights, x)
    want_ref = {"y": y_ref, "h_n": rnn.h_n}
    if cell == "lstm":
        want_ref["c_n"] = rnn.c_n
    got = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"x": x})))

    assert sorted(got) == sorted(want_torch) == sorted(want_ref)  # c_n exactly when LSTM
    D = 2 if bidirectional else 1
    assert got["y"].shape == (batch, 2)
    assert got["h_n"].shape == (layers * D, batch, 5)
    for name in want_torch:
        assert_close(got[name], want_torch[name], f"onnxruntime vs torch: {name}")
        assert_close(got[name], want_ref[name], f"onnxruntime vs numpy reference: {name}")
        assert_close(want_torch[name], want_ref[name], f"torch vs numpy reference: {name}")


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_fp32_tolerance_catches_a_small_weight_error(exported, cell):
    """The sweep's tolerance is tight enough to see one bias off by 0.01: the sweep can fail."""
    spec, model, weights, session = exported(cell, 2, False)
    x = np.random.default_rng(7).standard_normal((3, 3 * WINDOW, 3)).astype(np.float32)
    nudged = dict(weights)
    nudged["rnn.bias_hh_l1"] = weights["rnn.bias_hh_l1"] + np.float32(0.01)
    y_nudged, _ = model_forward(spec, nudged, x)
    y_onnx = session.run(["y"], {"x": x})[0]
    assert not np.allclose(y_onnx, y_nudged, atol=FP32.atol, rtol=FP32.rtol)


# --------------------------------------------------------------------------------------------
# The bundle on disk
# --------------------------------------------------------------------------------------------

BUNDLE_SPECS = [REGRESSION_SPEC, CLASSIFIER_SPEC, BIDIRECTIONAL_SPEC]
BUNDLE_IDS = ["lstm-regression", "gru-classifier", "lstm-bidirectional"]


@pytest.mark.parametrize("spec", BUNDLE_SPECS, ids=BUNDLE_IDS)
def test_manifest_lists_every_file_with_its_sha256_and_size(make_bundle, spec):
    bundle = make_bundle(spec)
    manifest = json.loads((bundle / "manifest.json").read_text())
    files = {v["file"] for v in manifest["variants"]}
    assert sorted(p.name for p in bundle.iterdir()) == sorted(files | {"manifest.json"})  # no temp leftovers
    for v in manifest["variants"]:
        data = (bundle / v["file"]).read_bytes()
        assert v["size"] == len(data)
        assert v["sha256"] == hashlib.sha256(data).hexdigest()
    assert manifest["spec"] == json.loads(json.dumps(spec.to_dict()))
    expected = {"onnx-window-fp32"} if spec.bidirectional else {"onnx-window-fp32", "onnx-step-fp32"}
    assert {v["name"] for v in manifest["variants"]} == expected


@pytest.mark.parametrize("spec", BUNDLE_SPECS, ids=BUNDLE_IDS)
def test_onnx_files_have_default_ir_and_opset_and_embed_the_spec(make_bundle, spec):
    bundle = make_bundle(spec)
    manifest = json.loads((bundle / "manifest.json").read_text())
    for v in manifest["variants"]:
        path = bundle / v["file"]
        model = onnx.load(str(path))
        assert model.ir_version == 8 == v["ir_version"]
        assert [(o.domain, o.version) for o in model.opset_import] == [("", 17)]
        assert v["opset"] == 17
        onnx.checker.check_model(model, full_check=True)

        meta = {p.key: p.value for p in model.metadata_props}
        assert ModelSpec.from_json(meta["edgernn.spec"]) == spec
        assert meta["edgernn.graph"] == v["graph"]

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        assert [(i.name, list(i.shape)) for i in session.get_inputs()] == [(t["name"], t["shape"]) for t in v["inputs"]]
        assert [(o.name, list(o.shape)) for o in session.get_outputs()] == [(t["name"], t["shape"]) for t in v["outputs"]]


def test_export_writes_the_requested_ir_version_and_opset(tmp_path):
    from edgernn.export import export_bundle

    spec = REGRESSION_SPEC
    weights = random_weights(spec, 3)
    result = export_bundle(spec, weights, tmp_path / "b", opset=13, ir_version=7)
    assert all(r.passed for r in result.reports)
    x = np.random.default_rng(0).standard_normal((2, 9, 3)).astype(np.float32)
    y_ref, _ = model_forward(spec, weights, x)
    for v in result.manifest.variants:
        model = onnx.load(str(tmp_path / "b" / v.file))
        assert (model.ir_version, v.ir_version) == (7, 7)
        assert [(o.domain, o.version) for o in model.opset_import] == [("", 13)]
        assert v.opset == 13
    session = ort.InferenceSession(str(tmp_path / "b" / "model.onnx"), providers=["CPUExecutionProvider"])
    assert_close(session.run(["y"], {"x": x})[0], y_ref, "opset 13 window graph vs reference")


def test_manifest_probe_reproduces_with_onnxruntime(make_bundle):
    """The probe stored for on-device `verify` holds the reference outputs of the bundle's own model."""
    bundle = make_bundle(REGRESSION_SPEC)
    probe = json.loads((bundle / "manifest.json").read_text())["probe"]
    session = ort.InferenceSession(str(bundle / "model.onnx"), providers=["CPUExecutionProvider"])
    x = np.asarray(probe["x"], np.float32)
    got = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"x": x})))
    y_ref, rnn = model_forward(REGRESSION_SPEC, random_weights(REGRESSION_SPEC, 0), x)
    assert_close(probe["outputs"]["y"], y_ref, "probe y vs reference")
    for name, want in probe["outputs"].items():
        assert_close(got[name], want, f"onnxruntime vs probe: {name}")
