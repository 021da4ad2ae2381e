"""A bundle cannot reach outside itself; a manifest is checked against its schema and format version at load.

Every case: exit 2, one line on stderr naming the problem, no traceback, and nothing outside the bundle
was opened (the outside model is never run: no predictions come out).
"""

from __future__ import annotations

import json
import os
import shutil

import pytest
from hostile_fixtures import bundle, not_root, small_bundle, windows  # noqa: F401  (fixtures)
from hostile_helpers import invoke, problems, read_manifest, snapshot, write_manifest

LOADERS = ["run", "verify", "info", "bench", "validate", "evaluate"]


def loader_args(command, bundle, windows):
    extra = {"run": ["--input", windows], "bench": ["--cold-runs", "0", "--repeat", "1"]}
    return [command, bundle, *extra.get(command, [])]


def assert_refused(result, *words):
    assert problems(result) == [], problems(result)
    assert result.exit_code == 2
    assert result.stdout == ""  # no prediction, no report
    for word in words:
        assert word in result.stderr, result.stderr


@pytest.fixture
def outside(tmp_path, small_bundle):
    """A valid model file outside the bundle (what a hostile manifest would point at)."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    shutil.copyfile(small_bundle / "model.onnx", folder / "model.onnx")
    return folder / "model.onnx"


@pytest.mark.parametrize("command", LOADERS)
def test_dotdot_path_to_a_valid_model_elsewhere_is_refused_by_every_loader(command, bundle, windows, outside):
    manifest = read_manifest(bundle)
    manifest["variants"][0]["file"] = os.path.relpath(outside, bundle)  # ../elsewhere/model.onnx, checksum valid
    write_manifest(bundle, manifest)
    assert_refused(invoke(loader_args(command, bundle, windows)), "plain file name", "outside")


@pytest.mark.parametrize("file", ["/etc/passwd", "../../../../../../etc/passwd", "sub/model.onnx", "..", ".",
                                  "model.onnx\x00.txt", "C:\\model.onnx", ""])
def test_variant_file_must_be_a_plain_name(file, bundle, windows):
    manifest = read_manifest(bundle)
    manifest["variants"][0]["file"] = file
    write_manifest(bundle, manifest)
    assert_refused(invoke(["run", bundle, "--input", windows]), "variants[0].file")


def test_absolute_path_to_a_valid_model_is_refused(bundle, windows, outside):
    manifest = read_manifest(bundle)
    manifest["variants"][0]["file"] = str(outside)
    write_manifest(bundle, manifest)
    for command in ("run", "verify"):
        assert_refused(invoke(loader_args(command, bundle, windows)), "plain file name")


@pytest.mark.parametrize("command", ["run", "verify", "bench"])
def test_symlink_leading_outside_is_refused(command, bundle, windows, outside):
    (bundle / "model.onnx").unlink()
    (bundle / "model.onnx").symlink_to(outside)  # same bytes: the checksum would pass
    assert_refused(invoke(loader_args(command, bundle, windows)), "symlink leading outside")


def test_symlinked_manifest_leading_outside_is_refused(bundle, windows, tmp_path):
    elsewhere = tmp_path / "manifest.json"
    shutil.move(bundle / "manifest.json", elsewhere)
    (bundle / "manifest.json").symlink_to(elsewhere)
    assert_refused(invoke(["info", bundle]), "symlink leading outside")


def test_symlink_inside_the_bundle_is_followed(bundle, windows):
    (bundle / "model.onnx").rename(bundle / "real.onnx")
    (bundle / "model.onnx").symlink_to("real.onnx")
    result = invoke(["run", bundle, "--input", windows])
    assert result.exit_code == 0, result.stderr
    assert len(result.stdout.splitlines()) == 2


@pytest.mark.parametrize("key, value, needs", [
    ("manifest_version", 2, "format version 2"),
    ("manifest_version", "7.1", "format version 7.1"),
    ("version", 99, "format version 99"),
    ("format_version", "3.0", "format version 3.0"),
])
@pytest.mark.parametrize("command", ["run", "verify", "info"])
def test_future_format_version_is_refused_naming_the_version(command, key, value, needs, bundle, windows):
    manifest = read_manifest(bundle)
    manifest[key] = value
    write_manifest(bundle, manifest)
    assert_refused(invoke(loader_args(command, bundle, windows)), needs, "reads format 1", "newer edgernn")


def test_future_spec_version_is_refused(bundle, windows):
    manifest = read_manifest(bundle)
    manifest["spec"]["spec_version"] = 5
    write_manifest(bundle, manifest)
    assert_refused(invoke(["run", bundle, "--input", windows]), "spec is version 5", "newer edgernn")


def test_minor_version_of_the_same_major_is_read(bundle, windows):
    manifest = read_manifest(bundle)
    manifest["manifest_version"] = "1.4"
    write_manifest(bundle, manifest)
    assert invoke(["run", bundle, "--input", windows]).exit_code == 0


def _set(path):
    def apply(manifest, value):
        node = manifest
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return apply


WRONG_TYPES = [
    (("variants",), "onnx-window-fp32", "variants must be a list"),
    (("variants",), {"a": 1}, "variants must be a list"),
    (("variants", 0), "model.onnx", "variants[0] must be an object"),
    (("variants", 0, "sha256"), 12345, "sha256 must be a string"),
    (("variants", 0, "sha256"), "abc", "64 hexadecimal digits"),
    (("variants", 0, "size"), "1024", "size must be an integer"),
    (("variants", 0, "size"), True, "size must be an integer"),
    (("variants", 0, "file"), ["model.onnx"], "file must be a string"),
    (("variants", 0, "format"), "exe", "format must be one of"),
    (("variants", 0, "graph"), 3, "graph must be a string"),
    (("variants", 0, "inputs"), "x", "inputs must be a list"),
    (("variants", 0, "inputs", 0), {"name": "x"}, "must have a name and a shape"),
    (("variants", 0, "inputs", 0, "shape"), [1, None], "shape[1] must be"),
    (("variants", 0, "requires"), "com.microsoft", "requires must be a list"),
    (("variants", 0, "opset"), "17", "opset must be an integer"),
    (("spec",), [], "spec must be an object"),
    (("spec", "hidden_size"), "32", "spec.hidden_size must be"),
    (("spec", "labels"), {"a": 1}, "spec.labels must be a list"),
    (("spec", "bidirectional"), "no", "spec.bidirectional must be true/false"),
    (("spec", "normalization", "x_std"), ["1"], "x_std[0] must be a number"),
    (("spec", "normalization", "x_std"), [0.0], "above 0"),
    (("streaming",), "yes", "streaming must be an object"),
    (("probe",), [1, 2], "probe must be an object"),
    (("probe", "outputs"), [1], "probe.outputs must be an object"),
    (("created",), 20240101, "created must be a string"),
]


@pytest.mark.parametrize("path, value, words", WRONG_TYPES, ids=[".".join(map(str, p)) for p, _, _ in WRONG_TYPES])
def test_wrong_types_are_one_line_naming_the_field(path, value, words, bundle, windows):
    manifest = read_manifest(bundle)
    _set(path)(manifest, value)
    write_manifest(bundle, manifest)
    before = snapshot(bundle)
    for command in ("run", "verify", "info"):
        assert_refused(invoke(loader_args(command, bundle, windows)), words, "manifest.json")
    assert snapshot(bundle) == before


@pytest.mark.parametrize("text", [b"", b"[1, 2]", b"null", b"{", b"\xff\xfe\x00garbage", b"[" * 100_000,
                                  b'{"spec": {}}', b'{"variants": []}'])
def test_damaged_manifest_text_is_one_line(text, bundle, windows):
    (bundle / "manifest.json").write_bytes(text)
    for command in ("run", "verify", "info"):
        assert_refused(invoke(loader_args(command, bundle, windows)), "manifest")


def test_duplicate_variant_names_are_refused(bundle, windows):
    manifest = read_manifest(bundle)
    manifest["variants"].append(dict(manifest["variants"][0]))
    write_manifest(bundle, manifest)
    assert_refused(invoke(["run", bundle, "--input", windows]), "twice")


def test_shipped_bundles_still_verify():
    from hostile_helpers import REPO

    for bundle in sorted((REPO / "models").glob("*/bundle")):
        result = invoke(["verify", bundle, "--variant", "onnx-window-fp32", "--variant", "onnx-step-fp32"])
        assert result.exit_code == 0, result.stdout + result.stderr
        assert json.loads((bundle / "manifest.json").read_text())["manifest_version"] == 1
