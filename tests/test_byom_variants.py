"""Every variant asked of ``export --module`` / ``edgernn.export(module, ...)`` is written, or the export
says which cannot be and why (``edgernn.export.module_variants``), writing nothing; ``--best-effort``
writes the rest and lists them. ``--calibration`` reaches int8-static; TFLite for recognised modules."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import byom_modules as bm  # noqa: E402

import edgernn  # noqa: E402
from edgernn.errors import BadInputError, ExportError  # noqa: E402
from edgernn.export.module_variants import ModuleKind, Wanted, plan, why_not  # noqa: E402
from helpers import invoke

F = bm.FEATURES
MODULES_FILE = Path(bm.__file__)


def error_line(result, code=2) -> str:
    assert result.exit_code == code, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


# ---------------------------------------------------------------- the table itself


def test_the_table_names_a_reason_for_each_path():
    plain = ModuleKind("plain", streams=True)
    assert why_not(Wanted("onnx", "step", "int8-dynamic"), plain) == ""
    assert why_not(Wanted("tflite", "window", "fp16"), plain) == ""
    assert "calibration" in why_not(Wanted("onnx", "window", "int8-static"), plain)
    assert why_not(Wanted("onnx", "window", "int8-static"), ModuleKind("plain", calibration=True)) == ""
    assert "unidirectional" in why_not(Wanted("tflite", "window", "fp32"), ModuleKind("plain", bidirectional=True))
    recognised = ModuleKind("recognised", beyond="takes lengths (padded batches)")
    assert "takes lengths" in why_not(Wanted("onnx", "window", "int8-static"), recognised)
    for weight_only in ("fp16", "int8-weights"):  # weight-only forms are written for any graph
        assert why_not(Wanted("onnx", "window", weight_only), recognised) == ""
        assert why_not(Wanted("onnx", "window", weight_only), ModuleKind("torch.onnx.export")) == ""
    assert "takes lengths" in why_not(Wanted("tflite", "window", "fp32"), recognised)
    generic = ModuleKind("torch.onnx.export")
    assert why_not(Wanted("onnx", "window", "fp32"), generic) == ""
    assert "torch.onnx.export" in why_not(Wanted("onnx", "window", "int8-dynamic"), generic)
    p = plan(ModuleKind("plain", streams=True), ("onnx", "tflite"), ("fp16", "int8-static"))
    assert [v.name for v, _ in p.refused] == ["onnx-window-int8-static", "onnx-step-int8-static",
                                              "tflite-window-int8-static", "tflite-step-int8-static"]
    assert p.formats == ("onnx", "tflite") and p.quantize == ("fp16",)


# ---------------------------------------------------------------- the Python API


def test_quantizing_a_module_edgernn_cannot_quantize_is_refused_naming_each_variant(tmp_path):
    with pytest.raises(ExportError) as e:
        edgernn.export(bm.Seq2SeqGRU(), torch.randn(2, 8, F), out=tmp_path / "b", quantize=("int8-dynamic",))
    message = str(e.value)
    assert "cannot write 2 of the 4 variants asked, nothing written" in message
    assert "onnx-window-int8-dynamic, onnx-step-int8-dynamic: edgernn writes int8-dynamic only" in message
    assert "head on every step" in message
    assert not (tmp_path / "b").exists()


def test_best_effort_writes_the_rest_and_lists_what_it_did_not(tmp_path):
    result = edgernn.export(bm.MLPHeadGRU(), torch.randn(2, 8, F), out=tmp_path / "b", quantize=("int8-dynamic",),
                            formats=("onnx", "tflite"), best_effort=True)
    assert [v.name for v in result.manifest.variants] == ["onnx-window-fp32"]
    listed = {e["variant"]: e["reason"] for e in result.manifest.not_written}
    assert set(listed) == {"onnx-window-int8-dynamic", "tflite-window-fp32", "tflite-window-int8-dynamic"}
    assert "torch.onnx.export" in listed["tflite-window-fp32"]
    on_disk = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert on_disk["not_written"] == [{"variant": k, "reason": v} for k, v in listed.items()]
    info = invoke("info", tmp_path / "b")
    assert info.exit_code == 0 and "not written: tflite-window-fp32: edgernn writes TFLite only" in info.stdout


def test_unknown_formats_and_precisions_are_refused(tmp_path):
    with pytest.raises(BadInputError, match="unknown: coreml"):
        edgernn.export(bm.LSTMRegressor(), torch.randn(2, 8, F), out=tmp_path / "b", formats=("onnx", "coreml"))
    with pytest.raises(BadInputError, match="quantize must be among"):
        edgernn.export(bm.LSTMRegressor(), torch.randn(2, 8, F), out=tmp_path / "b", quantize=("int4",))
    assert not (tmp_path / "b").exists()


def test_tflite_for_a_plain_module_and_refused_for_bidirectional(tmp_path):
    torch.manual_seed(0)
    module = bm.LSTMRegressor().eval()
    result = edgernn.export(module, torch.randn(2, 8, F), out=tmp_path / "b", formats=("onnx", "tflite"))
    names = [v.name for v in result.manifest.variants]
    assert {"tflite-window-fp32", "tflite-step-fp32"} <= set(names)
    x = np.random.default_rng(1).standard_normal((3, 9, F)).astype(np.float32)
    with torch.no_grad():
        want = module(torch.from_numpy(x)).numpy()
    got = edgernn.runtime.load(tmp_path / "b", variant="tflite-window-fp32").predict(x).values
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-4)
    with pytest.raises(ExportError, match="tflite-window-fp32: TFLite covers unidirectional RNNs only"):
        edgernn.export(bm.BiLSTMClassifier(), torch.randn(2, 8, F), out=tmp_path / "c", formats=("onnx", "tflite"))


# ---------------------------------------------------------------- the CLI


def test_cli_unknown_format_exits_2(tmp_path):
    line = error_line(invoke("export", "--module", f"{MODULES_FILE}:build_model", "--input-shape", "1,8,5",
                             "--format", "onnx,coreml", "--out", tmp_path / "b"))
    assert "formats must be among onnx, tflite" in line and "coreml" in line
    assert not (tmp_path / "b").exists()


def test_cli_refuses_then_best_effort_lists_on_stderr(tmp_path):
    args = ("export", "--module", f"{MODULES_FILE}:build_sentiment", "--input-shape", "2,9", "--quantize",
            "int8-dynamic", "--format", "onnx,tflite")
    line = error_line(invoke(*args, "--out", tmp_path / "b"))
    assert "onnx-window-int8-dynamic" in line and "tflite-window-fp32" in line and "takes token ids" in line
    assert not (tmp_path / "b").exists()
    result = invoke(*args, "--best-effort", "--out", tmp_path / "b", "--json")
    assert result.exit_code == 0, result.output
    d = json.loads(result.stdout)
    assert [v["name"] for v in d["variants"]] == ["onnx-window-fp32", "onnx-step-fp32"]
    stderr = [line for line in result.stderr.splitlines() if line.startswith("not written: ")]
    assert len(stderr) == len(d["not_written"]) == 6


def test_cli_calibration_with_module_reaches_int8_static(tmp_path):
    windows = np.random.default_rng(0).standard_normal((16, 10, F)).astype(np.float32)
    np.save(tmp_path / "calib.npy", windows)
    result = invoke("export", "--module", f"{MODULES_FILE}:build_model", "--input-shape", "1,10,5", "--quantize",
                    "int8-static", "--calibration", tmp_path / "calib.npy", "--out", tmp_path / "b", "--json")
    assert result.exit_code == 0, result.output
    d = json.loads(result.stdout)
    assert {"onnx-window-int8-static", "onnx-step-int8-static"} <= {v["name"] for v in d["variants"]}
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    q = next(v for v in manifest["variants"] if v["name"] == "onnx-window-int8-static")["quantization"]
    assert "calib.npy (16 windows)" in q["calibration"]


def test_checkpoint_export_of_a_bidirectional_model_to_tflite_is_refused_or_listed(tmp_path):
    """The checkpoint path said nothing but a note when TFLite was dropped for a bidirectional model."""
    from helpers import BIDIRECTIONAL_SPEC, random_weights

    from edgernn.export import export_bundle

    weights = random_weights(BIDIRECTIONAL_SPEC, 0)
    with pytest.raises(ExportError, match="cannot write tflite-window-fp32: TFLite covers unidirectional RNNs only"):
        export_bundle(BIDIRECTIONAL_SPEC, weights, tmp_path / "a", formats=("onnx", "tflite"))
    assert not (tmp_path / "a").exists()
    result = export_bundle(BIDIRECTIONAL_SPEC, weights, tmp_path / "b", formats=("onnx", "tflite"), best_effort=True)
    assert [v.name for v in result.manifest.variants] == ["onnx-window-fp32"]
    assert result.manifest.not_written == ({"variant": "tflite-window-fp32",
                                            "reason": "TFLite covers unidirectional RNNs only (its window graph "
                                                      "loops over the step graph)"},)


def test_target_runtime_is_applied_to_module_graphs_edgernn_did_not_write_as_a_checkpoint(tmp_path):
    from edgernn.export.targets import parse_target

    result = edgernn.export(bm.StackedWithNorm(), torch.randn(2, 6, F), out=tmp_path / "b",
                            target=parse_target("onnxruntime==1.10"), opset=15)
    assert result.manifest.target["runtime"] == "onnxruntime==1.10" and result.manifest.target["refused"] == []
    on_disk = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert on_disk["target"]["opset"] == 15


def test_plain_gru_module_gets_int8_weights_and_a_reason_for_int8_dynamic(tmp_path):
    """int8-weights is written for a module's plain GRU; ONNX int8-dynamic (no int8 GRU kernel in
    onnxruntime) is named with its reason, never dropped in silence."""
    import json

    import torch
    from torch import nn

    from edgernn.errors import ExportError
    from edgernn.export.from_module import export_module

    class TutorialGRU(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn, self.fc = nn.GRU(3, 8, batch_first=True), nn.Linear(8, 1)

        def forward(self, x):
            out, _ = self.rnn(x)
            return self.fc(out[:, -1])

    torch.manual_seed(0)
    module, x = TutorialGRU(), torch.randn(2, 5, 3)
    with pytest.raises(ExportError, match="onnx-window-int8-dynamic, onnx-step-int8-dynamic: onnxruntime has no int8 GRU"):
        export_module(module, x, tmp_path / "refused", quantize=("int8-weights", "int8-dynamic"))
    assert not (tmp_path / "refused").exists()
    export_module(module, x, tmp_path / "b", quantize=("int8-weights", "int8-dynamic"), best_effort=True)
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert [v["name"] for v in manifest["variants"]] == [
        "onnx-window-fp32", "onnx-step-fp32", "onnx-window-int8-weights", "onnx-step-int8-weights"]
    assert [e["variant"] for e in manifest["not_written"]] == ["onnx-window-int8-dynamic", "onnx-step-int8-dynamic"]


@pytest.mark.parametrize("name,path", [("BiLSTMClassifier", "recognised"), ("SoftmaxClassifier", "torch.onnx.export")])
def test_int8_weights_for_a_module_beyond_plain(name, path, tmp_path):
    """fp16 and weight-only int8 work on any ONNX graph: a recognised BiLSTM and a graph from torch.onnx.export
    get them, validated against the module; int8-static is still refused for them, by name and with the reason."""
    import json

    import torch

    import byom_modules
    from edgernn.export.from_module import export_module

    torch.manual_seed(0)
    module = getattr(byom_modules, name)()
    x = torch.randn(2, 12, byom_modules.FEATURES)
    export_module(module, x, tmp_path / "b", quantize=("int8-weights", "fp16", "int8-static"), best_effort=True,
                  calibration=np.random.default_rng(0).standard_normal((8, 12, byom_modules.FEATURES)).astype(np.float32))
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert manifest["module"]["path"] == path
    variants = {v["name"]: v for v in manifest["variants"]}
    assert set(variants) == {"onnx-window-fp32", "onnx-window-fp16", "onnx-window-int8-weights"}
    fp16 = variants["onnx-window-fp16"]
    assert "float16" in {e["stored"] for e in fp16["precision_report"]} and 0 < fp16["parity"]["max_abs"] < 1e-2
    int8 = variants["onnx-window-int8-weights"]
    report = int8["precision_report"]
    assert "int8" in {e["stored"] for e in report} and all(e["achieved"] for e in report)  # biases stay float32
    assert int8["parity"]["against"] == "module"
    assert 0 < int8["parity"]["max_abs"] < 0.01  # the weights' rounding, checked against the module itself
    assert [e["variant"] for e in manifest["not_written"]] == ["onnx-window-int8-static"]
