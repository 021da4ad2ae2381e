"""`edgernn export --target-runtime`: the runtime table, picked versions, refused graphs and variants."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

onnx = pytest.importorskip("onnx")

from edgernn.bundle import read_manifest  # noqa: E402
from edgernn.cli import cli  # noqa: E402
from edgernn.errors import BadInputError, ExportError  # noqa: E402
from edgernn.export import export_bundle  # noqa: E402
from edgernn.export.graph_builder import DEFAULT_IR_VERSION, DEFAULT_OPSET  # noqa: E402
from edgernn.export.onnx_step import build_step_graph  # noqa: E402
from edgernn.export.onnx_step_fused import build_fused_step_graph  # noqa: E402
from edgernn.export.onnx_window import build_window_graph  # noqa: E402
from edgernn.export.targets import (  # noqa: E402
    GRAPH_MIN_OPSET, ONNXRUNTIME_LIMITS, parse_target, screen_variants,
)
from edgernn.spec import ModelSpec  # noqa: E402
from helpers import numpy_random_weights  # noqa: E402

SPEC = ModelSpec(cell="gru", input_size=2, hidden_size=5, num_layers=2, window=6)


@pytest.mark.parametrize("text,ir,opset", [
    ("onnxruntime==1.16", DEFAULT_IR_VERSION, DEFAULT_OPSET),  # 1.16 loads IR 9 / opset 19: defaults fit
    ("onnxruntime==1.16.3", DEFAULT_IR_VERSION, DEFAULT_OPSET),
    ("onnxruntime==1.13", 8, 17),
    ("onnxruntime==1.11", 8, 16),
    ("onnxruntime==1.9", 8, 15),
    ("onnxruntime==1.8", 7, 14),
    ("onnxruntime==1.5", 7, 12),
    ("onnxruntime==1.0", 6, 11),
    ("ONNXRuntime == 1.99", DEFAULT_IR_VERSION, DEFAULT_OPSET),  # newer than the table: newest row's limits
])
def test_pick_within_limits(text, ir, opset):
    assert parse_target(text).pick() == (ir, opset)


def test_table_is_ordered_and_monotonic():
    releases = [row.release for row in ONNXRUNTIME_LIMITS]
    assert releases == sorted(releases, reverse=True) and len(set(releases)) == len(releases)
    for newer, older in zip(ONNXRUNTIME_LIMITS, ONNXRUNTIME_LIMITS[1:]):
        assert newer.opset >= older.opset and newer.ir_version >= older.ir_version


def test_beyond_table_is_marked():
    target = parse_target("onnxruntime==1.32")
    assert target.beyond_table and target.limits.release == ONNXRUNTIME_LIMITS[0].release
    assert "(newest known row)" in target.to_dict()["limits_from"]


def test_explicit_versions_within_and_beyond_limits():
    target = parse_target("onnxruntime==1.16")
    assert target.pick(ir_version=9, opset=19) == (9, 19)
    with pytest.raises(BadInputError, match=r"^--opset 20 is newer than onnxruntime==1.16 runs \(opset at most 19\)"):
        target.pick(opset=20)
    with pytest.raises(BadInputError, match=r"^--ir-version 10 is newer than onnxruntime==1.16 runs \(IR version at most 9\)"):
        target.pick(ir_version=10)


def test_kernels_lag_lowers_the_usable_opset():
    target = parse_target("onnxruntime==1.15")
    assert (target.limits.opset, target.limits.usable_opset) == (19, 18)
    assert target.pick(opset=18) == (DEFAULT_IR_VERSION, 18)
    with pytest.raises(BadInputError) as e:
        target.pick(opset=19)
    assert str(e.value) == ("--opset 19 is newer than onnxruntime==1.15 runs (opset at most 18: onnxruntime 1.15 has no "
                            "opset-19 kernels for Identity and Reshape (measured with 1.15.1)); pass --opset 18 or leave it out")
    model = build_window_graph(SPEC, numpy_random_weights(SPEC, 6), ir_version=8, opset=19)
    assert target.model_problems(model) == ["uses ai.onnx opset 19; onnxruntime==1.15 runs opset 18 (onnxruntime 1.15 "
                                            "has no opset-19 kernels for Identity and Reshape (measured with 1.15.1))"]


@pytest.mark.parametrize("text,message", [
    ("onnxruntime>=1.16", "expected a target runtime as NAME==VERSION, e.g. onnxruntime==1.16, got 'onnxruntime>=1.16'"),
    ("onnxruntime==1", "expected a target runtime as NAME==VERSION, e.g. onnxruntime==1.16, got 'onnxruntime==1'"),
    ("tflite-runtime==2.14", "unknown target runtime 'tflite-runtime'; edgernn knows the limits of: onnxruntime"),
    ("onnxruntime==0.5", "no onnxruntime release 0.5 on record; known: 1.0 to 1.20 and newer"),
])
def test_bad_target_strings(text, message):
    with pytest.raises(BadInputError) as e:
        parse_target(text)
    assert str(e.value) == message


@pytest.mark.parametrize("graph,build", [("window", build_window_graph), ("step", build_step_graph),
                                         ("step", build_fused_step_graph)])
def test_graph_min_opset_matches_the_writers(graph, build):
    """GRAPH_MIN_OPSET is what the graph writers really need: they build at it and fail one below."""
    weights = numpy_random_weights(SPEC, 0)
    need, _ = GRAPH_MIN_OPSET[graph]
    build(SPEC, weights, ir_version=7, opset=need)
    if need > 7:
        with pytest.raises((onnx.checker.ValidationError, ExportError)):
            build(SPEC, weights, ir_version=7, opset=need - 1)


def test_old_target_gets_window_only(tmp_path):
    target = parse_target("onnxruntime==1.5")
    ir, opset = target.pick()
    result = export_bundle(SPEC, numpy_random_weights(SPEC, 1), tmp_path / "b", ir_version=ir, opset=opset, target=target)
    manifest = read_manifest(tmp_path / "b")
    assert [v.name for v in manifest.variants] == ["onnx-window-fp32"]
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["manifest.json", "model.onnx"]
    assert manifest.variants[0].opset == 12 and manifest.variants[0].ir_version == 7
    assert manifest.streaming["supported"] is False
    assert "forms added in opset 13" in manifest.streaming["reason"]
    assert manifest.target["runtime"] == "onnxruntime==1.5"
    assert manifest.target["refused"][0]["variant"] == "onnx-step-*"
    model = onnx.load(str(tmp_path / "b" / "model.onnx"))
    assert model.ir_version == 7 and model.opset_import[0].version == 12
    assert result.reports and all(r.passed for r in result.reports)


def _variant_like(name, file, graph="window"):
    from edgernn.bundle import Variant

    return Variant(name=name, file=file, format="onnx", graph=graph, precision="fp32", size=0, sha256="",
                   inputs=(), outputs=())


def _save(model, path: Path) -> Path:
    onnx.save(model, str(path))
    return path


def test_screen_refuses_newer_ir_opset_and_unknown_ops(tmp_path):
    weights = numpy_random_weights(SPEC, 2)
    _save(build_window_graph(SPEC, weights, ir_version=8, opset=17), tmp_path / "ok.onnx")
    _save(build_window_graph(SPEC, weights, ir_version=10, opset=21), tmp_path / "new.onnx")
    contrib = build_step_graph(SPEC, weights, ir_version=8, opset=17)
    contrib.opset_import.append(onnx.helper.make_opsetid("com.microsoft", 1))
    contrib.graph.node.append(onnx.helper.make_node("DynamicQuantizeLSTM", [], [], domain="com.microsoft"))
    contrib.graph.node.append(onnx.helper.make_node("FancyNewOp", [], [], domain="com.microsoft"))
    _save(contrib, tmp_path / "contrib.onnx")
    custom = build_step_graph(SPEC, weights, ir_version=8, opset=17)
    custom.opset_import.append(onnx.helper.make_opsetid("org.example", 1))
    _save(custom, tmp_path / "custom.onnx")
    variants = [_variant_like("a", "ok.onnx"), _variant_like("b", "new.onnx"),
                _variant_like("c", "contrib.onnx", "step"), _variant_like("d", "custom.onnx", "step")]

    screening = screen_variants(parse_target("onnxruntime==1.16"), tmp_path, variants)
    assert [v.name for v in screening.kept] == ["a"]
    reasons = {r["variant"]: r["reason"] for r in screening.refused}
    assert reasons["b"] == ("written at ONNX IR version 10; onnxruntime==1.16 loads IR version 9 at most; "
                            "uses ai.onnx opset 21; onnxruntime==1.16 runs opset 19")
    assert reasons["c"] == "uses contrib ops FancyNewOp, which onnxruntime 1.16 does not have"
    assert reasons["d"] == "uses ops of domain 'org.example', which onnxruntime does not have without a custom-op library"
    assert not (tmp_path / "new.onnx").exists() and (tmp_path / "ok.onnx").exists()


def test_screen_contrib_ops_before_the_record():
    model = build_step_graph(SPEC, numpy_random_weights(SPEC, 3), ir_version=7, opset=14)
    model.opset_import.append(onnx.helper.make_opsetid("com.microsoft", 1))
    model.graph.node.append(onnx.helper.make_node("DynamicQuantizeLSTM", [], [], domain="com.microsoft"))
    assert parse_target("onnxruntime==1.8").model_problems(model) == [
        "uses onnxruntime contrib ops (DynamicQuantizeLSTM); edgernn has no record of which exist before onnxruntime 1.16"]
    assert parse_target("onnxruntime==1.17").model_problems(model) == []


def test_screen_refusing_every_window_graph_is_an_error(tmp_path):
    _save(build_window_graph(SPEC, numpy_random_weights(SPEC, 4), ir_version=10, opset=21), tmp_path / "w.onnx")
    with pytest.raises(ExportError, match=r"^onnxruntime==1.16 can run none of the bundle's ONNX window graphs \(w: "):
        screen_variants(parse_target("onnxruntime==1.16"), tmp_path, [_variant_like("w", "w.onnx")])


# --- the CLI -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    pytest.importorskip("safetensors")
    from edgernn.checkpoint import save_checkpoint

    run = tmp_path_factory.mktemp("run")
    spec = ModelSpec(cell="lstm", input_size=2, hidden_size=4, window=5)
    return save_checkpoint(run, {"spec": spec.to_dict()}, numpy_random_weights(spec, 5))


def export_cli(*args):
    return CliRunner().invoke(cli, ["export", *map(str, args)])


def test_cli_target_json(checkpoint, tmp_path):
    result = export_cli(checkpoint, "--out", tmp_path / "b", "--target-runtime", "onnxruntime==1.11", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["target"]["runtime"] == "onnxruntime==1.11"
    assert (payload["target"]["ir_version"], payload["target"]["opset"]) == (8, 16)
    assert payload["target"]["refused"] == []
    assert {v.opset for v in read_manifest(tmp_path / "b").variants} == {16}
    verified = CliRunner().invoke(cli, ["verify", str(tmp_path / "b")])
    assert verified.exit_code == 0, verified.output


def test_cli_target_text_shows_refusals(checkpoint, tmp_path):
    result = export_cli(checkpoint, "--out", tmp_path / "b", "--target-runtime", "onnxruntime==1.5")
    assert result.exit_code == 0, result.output
    assert "target onnxruntime==1.5: IR version 7, opset 12" in result.stdout
    assert "  refused onnx-step-*: onnxruntime==1.5 implements ONNX opset 12, but the step graph" in result.stdout


@pytest.mark.parametrize("args,message", [
    (["--target-runtime", "onnxruntime"],
     "error: expected a target runtime as NAME==VERSION, e.g. onnxruntime==1.16, got 'onnxruntime'\n"),
    (["--target-runtime", "onnxruntime==1.13", "--opset", "19"],
     "error: --opset 19 is newer than onnxruntime==1.13 runs (opset at most 17); pass --opset 17 or leave it out\n"),
])
def test_cli_bad_target_exits_2_with_one_line(checkpoint, tmp_path, args, message):
    result = export_cli(checkpoint, "--out", tmp_path / "b", *args)
    assert result.exit_code == 2
    assert result.stderr == message
    assert not (tmp_path / "b").exists()


def test_default_export_records_no_target(checkpoint, tmp_path):
    assert export_cli(checkpoint, "--out", tmp_path / "b").exit_code == 0
    assert read_manifest(tmp_path / "b").target == {}
    assert np.isfinite(read_manifest(tmp_path / "b").variants[0].parity["max_abs"])
