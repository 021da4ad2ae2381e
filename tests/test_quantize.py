"""Quantized variants: fp16, int8-dynamic, int8-static for the window and step graphs, LSTM and GRU.

Models are 2-layer, hidden 64 (so that file-size ratios mean something), random weights; int8-static
is calibrated on standard-normal windows, the scale the graphs see after normalisation.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, numpy_helper

from edgernn.bundle import read_manifest, sha256_of
from edgernn.cli import cli
from edgernn.spec import ModelSpec, Normalization

PRECISIONS = ("fp32", "fp16", "int8-dynamic", "int8-static")
INT8 = ("int8-dynamic", "int8-static")
H, L = 64, 2


def spec_for(cell: str) -> ModelSpec:
    return ModelSpec(cell=cell, input_size=3, hidden_size=H, num_layers=L, output_size=2, window=12,
                     normalization=Normalization(x_mean=(0.0, 1.0, -1.0), x_std=(1.0, 2.0, 0.5),
                                                 y_mean=(0.0, 0.0), y_std=(1.0, 1.0)))


def random_weights(spec: ModelSpec, seed: int = 0, scale: float = 1.0) -> dict[str, np.ndarray]:
    """A torch model's initial weights; ``scale`` > 1 makes gates saturate and outputs O(1), as
    trained weights do (at init, outputs are ~0.1 and a swapped gate pair changes them little)."""
    from edgernn.nn import build_model

    return {k: v.detach().numpy().copy() * (scale if k.startswith("rnn.") else 1.0)
            for k, v in build_model(spec, seed=seed).state_dict().items()}


@pytest.fixture(scope="module", params=["lstm", "gru"])
def quantized_bundle(request, tmp_path_factory) -> Path:
    from edgernn.export import export_bundle

    spec = spec_for(request.param)
    calibration = np.random.default_rng(7).standard_normal((64, spec.window, spec.input_size)).astype(np.float32)
    out = tmp_path_factory.mktemp("quantized") / request.param
    export_bundle(spec, random_weights(spec, scale=3.0), out, quantize=("fp16", "int8-dynamic", "int8-static"),
                  calibration=calibration, calibration_source="standard-normal test windows")
    return out


def all_initializers(graph: onnx.GraphProto) -> list[onnx.TensorProto]:
    found = list(graph.initializer)
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                found += all_initializers(attr.g)
    return found


def weight_matrices(path: Path) -> list[onnx.TensorProto]:
    """Every initializer holding a weight matrix or stack (ndim ≥ 2, at least H elements), at any depth."""
    model = onnx.load(str(path))
    return [t for t in all_initializers(model.graph) if len(t.dims) >= 2 and np.prod(t.dims) >= H]


def test_every_variant_exists_loads_and_passes_validation(quantized_bundle):
    from edgernn.runtime import load
    from edgernn.validate import validate_bundle

    manifest = read_manifest(quantized_bundle)
    names = {v.name for v in manifest.variants}
    assert names == {f"onnx-{g}-{p}" for g in ("window", "step") for p in PRECISIONS}
    for v in manifest.variants:
        assert (quantized_bundle / v.file).is_file()
        assert v.requires == ()  # generic ops only
        assert v.opset == 17 and v.ir_version == 8
        model = onnx.load(str(quantized_bundle / v.file))
        assert model.ir_version == 8 and {(o.domain, o.version) for o in model.opset_import} == {("", 17)}
        assert load(quantized_bundle, variant=v.name).variant.precision == v.precision
    reports = validate_bundle(quantized_bundle)
    assert {r.variant for r in reports} == names
    failed = {r.variant: r.worst() for r in reports if not r.passed}
    assert not failed
    stream = {r.variant for r in reports if any(c.against == "window" for c in r.comparisons)}
    assert stream == {f"onnx-step-{p}" for p in PRECISIONS}  # every step graph checked against its window twin


@pytest.mark.parametrize("graph", ["window", "step"])
def test_int8_files_are_at_most_30_percent_of_fp32(quantized_bundle, graph):
    manifest = read_manifest(quantized_bundle)
    fp32 = manifest.variant(f"onnx-{graph}-fp32").size
    for precision in INT8:
        ratio = manifest.variant(f"onnx-{graph}-{precision}").size / fp32
        assert ratio <= 0.30, f"{graph} {precision}: {ratio:.1%} of fp32"
    assert manifest.variant(f"onnx-{graph}-fp16").size / fp32 <= 0.55


def test_every_weight_is_stored_in_the_precision_asked(quantized_bundle):
    manifest = read_manifest(quantized_bundle)
    expected_dtype = {"fp32": TensorProto.FLOAT, "fp16": TensorProto.FLOAT16,
                      "int8-dynamic": TensorProto.INT8, "int8-static": TensorProto.INT8}
    for v in manifest.variants:
        matrices = weight_matrices(quantized_bundle / v.file)
        dtypes = {t.name: t.data_type for t in matrices}
        assert set(dtypes.values()) == {expected_dtype[v.precision]}, (v.name, dtypes)
        if v.precision in INT8:  # per layer W_ih and W_hh, plus the head
            assert len(matrices) == 2 * L + 1, (v.name, sorted(dtypes))
        # the report agrees with the file, and covers every matrix
        report = v.precision_report
        assert report and all(e["achieved"] and e["asked"] == v.precision for e in report)
        assert {e["initializer"] for e in report} >= set(dtypes)
        if v.precision in INT8:
            assert all(e["stored"] == "int8" and e["compute"].startswith("int8") for e in report)


def corrupt(bundle: Path, variant: str, how: str) -> None:
    """Damage ``variant``'s recurrent weights (H, G·H), then re-sign the file so only parity can tell.

    gate-order: the first two gate blocks swapped in every recurrent matrix, as an exporter that
    got the gate order wrong would write them; random-weight: the first recurrent matrix random.
    """
    manifest = json.loads((bundle / "manifest.json").read_text())
    entry = next(v for v in manifest["variants"] if v["name"] == variant)
    path = bundle / entry["file"]
    model = onnx.load(str(path))
    targets = [t for t in all_initializers(model.graph)
               if t.data_type == TensorProto.INT8 and tuple(t.dims[:1]) == (H,) and t.dims[1] >= 3 * H]
    for target in targets if how == "gate-order" else targets[:1]:
        w = numpy_helper.to_array(target)
        if how == "gate-order":  # swap the first two gate blocks (columns)
            w = np.concatenate([w[:, H : 2 * H], w[:, :H], w[:, 2 * H :]], axis=1)
        else:  # a weight left random
            w = np.random.default_rng(0).integers(-127, 128, size=w.shape).astype(np.int8)
        target.CopyFrom(numpy_helper.from_array(w, target.name))
    onnx.save(model, str(path))
    entry["sha256"] = sha256_of(path)
    (bundle / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize("how", ["gate-order", "random-weight"])
@pytest.mark.parametrize("variant", ["onnx-window-int8-static", "onnx-step-int8-dynamic"])
def test_a_corrupted_int8_variant_fails_validation(quantized_bundle, tmp_path, variant, how):
    from edgernn.validate import validate_bundle

    bundle = tmp_path / "damaged"
    shutil.copytree(quantized_bundle, bundle)
    corrupt(bundle, variant, how)
    failed = {r.variant for r in validate_bundle(bundle, batches=(3,), stream_batches=(2,)) if not r.passed}
    assert variant in failed


# ---- the command line -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gru_run(tmp_path_factory) -> Path:
    """A GRU trained briefly on the built-in ``sum`` task: a checkpoint with a data source."""
    from edgernn.datasource import DataSource
    from edgernn.nn.train import TrainConfig, train

    out = tmp_path_factory.mktemp("runs") / "sum-gru"
    train(DataSource(task="sum", n=200), TrainConfig(cell="gru", epochs=1, hidden_size=8), out, progress=False)
    return out


def test_export_quantize_through_the_cli(gru_run, tmp_path):
    out = tmp_path / "bundle"
    result = CliRunner().invoke(cli, ["export", str(gru_run), "--out", str(out), "--quantize",
                                      "int8-static, fp16,int8-dynamic", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert [v["name"] for v in payload["variants"]] == [
        "onnx-window-fp32", "onnx-step-fp32", "onnx-window-fp16", "onnx-step-fp16",
        "onnx-window-int8-dynamic", "onnx-step-int8-dynamic", "onnx-window-int8-static", "onnx-step-int8-static"]
    assert all(v["parity"]["max_abs"] >= 0 for v in payload["variants"])
    static = read_manifest(out).variant("onnx-step-int8-static")
    assert static.quantization["calibration"].startswith("training split of sum")
    assert (out / "model.step.int8-static.onnx").is_file()

    info = CliRunner().invoke(cli, ["info", str(out)])
    assert info.exit_code == 0, info.output
    assert "precision report" in info.output and "int8" in info.output


def test_bad_quantize_value_exits_2_with_one_line(gru_run, tmp_path):
    result = CliRunner().invoke(cli, ["export", str(gru_run), "--out", str(tmp_path / "b"), "--quantize", "fp16,int4"])
    assert result.exit_code == 2
    assert result.output == ("error: --quantize expects a comma-separated list of fp16, int8-dynamic, int8-static, "
                             "got 'fp16,int4'\n")
    assert not (tmp_path / "b").exists()


def test_calibration_file_of_the_wrong_shape_exits_2(gru_run, tmp_path):
    bad = tmp_path / "calibration.npy"
    np.save(bad, np.zeros((4, 10, 3), np.float32))  # the model has 1 feature
    result = CliRunner().invoke(cli, ["export", str(gru_run), "--out", str(tmp_path / "b"), "--quantize", "int8-static",
                                      "--calibration", str(bad)])
    assert result.exit_code == 2
    assert result.output == f"error: {bad}: expected input of shape (N, T, 1), got (4, 10, 3)\n"
    assert not (tmp_path / "b").exists()


def test_calibration_file_is_used_for_int8_static(gru_run, tmp_path):
    calibration = tmp_path / "calibration.npy"
    np.save(calibration, np.random.default_rng(0).uniform(0, 1, (40, 10)).astype(np.float32))  # (N, T), 1 feature
    result = CliRunner().invoke(cli, ["export", str(gru_run), "--out", str(tmp_path / "b"), "--quantize", "int8-static",
                                      "--calibration", str(calibration)])
    assert result.exit_code == 0, result.output
    assert read_manifest(tmp_path / "b").variant("onnx-window-int8-static").quantization["calibration"].startswith(
        f"{calibration} (40 windows)")


def test_bidirectional_model_gets_int8_window_variants(tmp_path):
    from edgernn.export import export_bundle

    spec = ModelSpec(cell="gru", input_size=2, hidden_size=8, bidirectional=True, output_size=1, window=6)
    result = export_bundle(spec, random_weights(spec, 3), tmp_path / "b", quantize=("int8-dynamic", "int8-static"),
                           calibration=np.random.default_rng(1).standard_normal((16, 6, 2)).astype(np.float32))
    names = [v.name for v in result.manifest.variants]
    assert names == ["onnx-window-fp32", "onnx-window-int8-dynamic", "onnx-window-int8-static"]
    assert all(r.passed for r in result.reports)
