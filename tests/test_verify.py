"""`edgernn verify`: checksums, runtime versions and the self-test on the manifest's stored probe."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edgernn.cli import cli
from edgernn.spec import ModelSpec
from helpers import numpy_random_weights

pytest.importorskip("onnx")  # bundles are written with the export extra; verify itself needs no onnx


def export_random_bundle(out: Path, cell: str = "lstm", **spec_kwargs) -> Path:
    from edgernn.export import export_bundle

    spec = ModelSpec(cell=cell, input_size=3, hidden_size=6, num_layers=2, window=12, **spec_kwargs)
    export_bundle(spec, numpy_random_weights(spec, seed=7), out)
    return out


@pytest.fixture(scope="module")
def fresh_bundles(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bundles")
    return {cell: export_random_bundle(root / cell, cell) for cell in ("lstm", "gru")}


@pytest.fixture
def bundle(tmp_path) -> Path:
    return export_random_bundle(tmp_path / "b")


def edit_manifest(bundle: Path, change) -> None:
    path = bundle / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


def invoke(*args: str):
    return CliRunner().invoke(cli, ["verify", *map(str, args)])


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_fresh_bundle_passes(fresh_bundles, cell):
    result = invoke(fresh_bundles[cell])
    assert result.exit_code == 0, result.output
    assert result.output.rstrip().endswith("verify: passed")
    assert "passed   onnx-window-fp32" in result.output
    assert "passed   onnx-step-fp32" in result.output


def test_json_shape(fresh_bundles):
    result = invoke(fresh_bundles["lstm"], "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report) == {"bundle", "passed", "runtime", "exported_with", "target", "files", "probe", "variants"}
    assert report["passed"] is True
    assert {"python", "machine", "system", "onnxruntime", "numpy"} <= set(report["runtime"])
    assert report["probe"] == {"batch": 2, "length": 12, "features": 3}
    assert [f["status"] for f in report["files"]] == ["ok", "ok"]
    assert {f["file"] for f in report["files"]} == {"model.onnx", "model.step.onnx"}
    by_name = {v["variant"]: v for v in report["variants"]}
    assert set(by_name) == {"onnx-window-fp32", "onnx-step-fp32"}
    assert by_name["onnx-step-fp32"]["mode"] == "stream"
    for v in by_name.values():
        assert v["status"] == "passed"
        assert v["tolerance"] == {"atol": 1e-4, "rtol": 1e-3, "scale": "element"}
        assert [o["output"] for o in v["outputs"]] == ["y", "h_n", "c_n"]
        assert all(o["passed"] and o["max_abs"] < 1e-5 for o in v["outputs"])
        assert v["max_abs"] == max(o["max_abs"] for o in v["outputs"])


def test_gru_has_no_cell_state(fresh_bundles):
    report = json.loads(invoke(fresh_bundles["gru"], "--json").stdout)
    assert all([o["output"] for o in v["outputs"]] == ["y", "h_n"] for v in report["variants"])


def test_altered_probe_outputs_fail(bundle):
    def shift_y(m):
        m["probe"]["outputs"]["y"] = (np.asarray(m["probe"]["outputs"]["y"]) + 0.01).tolist()

    edit_manifest(bundle, shift_y)
    result = invoke(bundle)
    assert result.exit_code == 1
    assert "verify: FAILED" in result.stdout
    assert "y differ from the stored reference beyond the fp32 tolerance" in result.stdout
    assert result.stderr == "error: self-test failed for: onnx-window-fp32, onnx-step-fp32\n"


def test_tampered_model_file_exits_2(bundle):
    with open(bundle / "model.step.onnx", "ab") as f:
        f.write(b"\0")
    result = invoke(bundle, "--json")
    assert result.exit_code == 2
    report = json.loads(result.stdout)
    assert [f["status"] for f in report["files"]] == ["ok", "mismatch"]
    step = next(v for v in report["variants"] if v["variant"] == "onnx-step-fp32")
    assert step["status"] == "failed" and step["reason"] == "not run: its file model.step.onnx is mismatch"
    assert result.stderr == ("error: bundle files do not match the manifest: model.step.onnx (mismatch); "
                             "copy the bundle again or export it again\n")


def test_missing_model_file_exits_2(bundle):
    (bundle / "model.onnx").unlink()
    result = invoke(bundle)
    assert result.exit_code == 2
    assert "missing  model.onnx" in result.stdout
    assert "model.onnx (missing)" in result.stderr


def test_missing_bundle_exits_2(tmp_path):
    result = invoke(tmp_path / "nope")
    assert result.exit_code == 2
    assert result.stderr == f"error: {tmp_path / 'nope'}: no such bundle directory or model file\n"


def test_bare_model_file_exits_2(bundle):
    result = invoke(bundle / "model.onnx")
    assert result.exit_code == 2
    assert "verify needs a bundle folder" in result.stderr


def test_bundle_without_probe_exits_2(bundle):
    edit_manifest(bundle, lambda m: m.update(probe={}))
    result = invoke(bundle)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: this bundle's manifest holds no probe")


def test_unknown_precision_fails_with_reason(bundle):
    def rename(m):
        m["variants"][1]["precision"] = "int3"

    edit_manifest(bundle, rename)
    result = invoke(bundle, "--json")
    assert result.exit_code == 1
    step = json.loads(result.stdout)["variants"][1]
    assert step["status"] == "failed"
    assert step["reason"].startswith("no tolerance is defined for precision 'int3' (this edgernn knows: ")


def test_one_variant_and_saved_outputs(fresh_bundles, tmp_path):
    out = tmp_path / "outputs.npz"
    result = invoke(fresh_bundles["lstm"], "--variant", "onnx-step-fp32", "--save-outputs", out)
    assert result.exit_code == 0, result.output
    assert "onnx-window-fp32" not in result.stdout.split("self-test")[1]
    with np.load(out) as saved:
        assert sorted(saved.files) == ["onnx-step-fp32/c_n", "onnx-step-fp32/h_n", "onnx-step-fp32/y"]
        assert saved["onnx-step-fp32/h_n"].shape == (2, 2, 6)


def test_unknown_variant_exits_2(fresh_bundles):
    result = invoke(fresh_bundles["lstm"], "--variant", "onnx-window-int9")
    assert result.exit_code == 2
    assert "no variant 'onnx-window-int9' in this bundle" in result.stderr


def test_verify_imports_no_torch_onnx_or_tensorflow(fresh_bundles):
    code = (
        "import sys\n"
        "from edgernn.cli import cli\n"
        f"try:\n    cli(['verify', {str(fresh_bundles['gru'])!r}])\n"
        "except SystemExit as e:\n    assert e.code == 0, e.code\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'onnx', 'tensorflow', 'onnxscript'})\n"
        "print('HEAVY', heavy)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "verify: passed" in done.stdout
    assert done.stdout.rstrip().endswith("HEAVY []")
