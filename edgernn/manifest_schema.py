"""What a ``manifest.json`` may hold, checked once when a bundle is read.

A manifest comes from outside (a bundle copied onto a device, sent by someone else), so nothing in
it is trusted: every field the code uses has its type checked here, variant files must be plain
names inside the bundle folder, and a format version newer than this runtime reads is refused.
Each problem is one ``ModelFileError`` line naming the field. Standard library only.
"""

from __future__ import annotations

import math
import re
from typing import Any

from edgernn.errors import ModelFileError

MANIFEST_VERSION = 1  # the newest manifest format this runtime reads (a major version)
SHA256 = re.compile(r"[0-9a-f]{64}")
FORMATS = ("onnx", "tflite")
GRAPHS = ("window", "step")

Number = (int, float)
DICT, LIST, STR, INT, BOOL, OPT_INT, OPT_STR = dict, list, str, int, bool, (int, type(None)), (str, type(None))

TOP_LEVEL = {"created": STR, "spec": DICT, "streaming": DICT, "versions": DICT, "variants": LIST, "probe": DICT,
             "data": DICT, "target": DICT, "module": DICT, "not_written": LIST, "refused": LIST}
QUANTIZATION = {"storage": STR, "compute": STR, "fast_on": LIST, "slow_on": LIST, "latency": DICT, "tool": STR}
NOT_WRITTEN = {"variant": STR, "reason": STR}
VARIANT = {"name": STR, "file": STR, "format": STR, "graph": STR, "precision": STR, "size": INT, "sha256": STR,
           "inputs": LIST, "outputs": LIST, "opset": OPT_INT, "ir_version": OPT_INT, "requires": LIST,
           "state": DICT, "precision_report": LIST, "quantization": DICT, "parity": DICT}
VARIANT_REQUIRED = ("name", "file", "format", "graph", "precision", "size", "sha256")
TENSOR = {"name": STR, "shape": LIST, "dtype": STR, "doc": STR}
SPEC = {"cell": OPT_STR, "input_size": OPT_INT, "hidden_size": OPT_INT, "num_layers": OPT_INT,
        "bidirectional": BOOL, "dropout": Number, "head": OPT_STR, "output_size": INT, "labels": LIST,
        "window": OPT_INT, "task": OPT_STR, "normalization": (dict, type(None)), "spec_version": INT,
        "proj_size": INT, "head_input": STR, "vocab_size": INT, "module": OPT_STR}
PRECISION_ENTRY = {"initializer": STR, "op": STR, "shape": LIST, "asked": STR, "stored": STR, "compute": STR,
                   "achieved": BOOL}
NORMALIZATION_FIELDS = ("x_mean", "x_std", "y_mean", "y_std")
VERSION_KEYS = ("manifest_version", "format_version", "version")  # the last two: spellings seen in the wild


def _type_name(types) -> str:
    types = types if isinstance(types, tuple) else (types,)
    if float in types:  # "an integer or a number" says less than "a number"
        types = tuple(t for t in types if t is not int)
    names = {dict: "an object", list: "a list", str: "a string", int: "an integer", float: "a number",
             bool: "true/false", type(None): "null"}
    return " or ".join(names.get(t, t.__name__) for t in types)


def _got(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "true/false", type(None): "null"}
    if type(value) in (int, float):
        return f"the number {value!r}"
    return names.get(type(value), type(value).__name__)


def _check_type(value: Any, types, where: str) -> None:
    ok = isinstance(value, types)
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        ok = False  # JSON true is not an integer here
    if not ok:
        raise ModelFileError(f"manifest field {where} must be {_type_name(types)}, got {_got(value)}")


def _check_fields(d: dict, schema: dict, where: str) -> None:
    for key, types in schema.items():
        if key in d:
            _check_type(d[key], types, f"{where}.{key}" if where else key)


def format_major(value: Any, where: str) -> int:
    """The major version of a declared format version: ``1``, ``"1"`` or ``"1.2"``."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and re.fullmatch(r"\d+(\.\d+)*", value.strip()):
        return int(value.strip().split(".")[0])
    raise ModelFileError(f"manifest field {where} must be a version number, got {_got(value)}")


def check_version(d: dict, runtime_version: str) -> None:
    for key in VERSION_KEYS:
        if key in d and format_major(d[key], key) > MANIFEST_VERSION:
            raise ModelFileError(
                f"this bundle's manifest is format version {d[key]} ({key}); this edgernn ({runtime_version}) "
                f"reads format {MANIFEST_VERSION} and older: install a newer edgernn to use it"
            )


def check_plain_name(name: str, where: str) -> None:
    """A variant file is a plain file name: no folders, no ``..``, not absolute."""
    bad = (not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name
           or name != name.strip() or (len(name) > 1 and name[1] == ":"))
    if bad:
        raise ModelFileError(
            f"manifest field {where} must be a plain file name inside the bundle folder, got {name!r}; "
            "a bundle may not refer to files outside itself"
        )


def check_spec(spec: dict, spec_version: int, runtime_version: str) -> None:
    _check_fields(spec, SPEC, "spec")
    if spec.get("spec_version", 1) > spec_version:
        raise ModelFileError(
            f"this bundle's model spec is version {spec['spec_version']}; this edgernn ({runtime_version}) reads "
            f"version {spec_version} and older: install a newer edgernn to use it"
        )
    for i, label in enumerate(spec.get("labels", [])):
        _check_type(label, (str, int), f"spec.labels[{i}]")
    norm = spec.get("normalization")
    if norm is not None:
        for key in NORMALIZATION_FIELDS:
            values = norm.get(key, [])
            _check_type(values, list, f"spec.normalization.{key}")
            for i, v in enumerate(values):
                _check_type(v, Number, f"spec.normalization.{key}[{i}]")
                if not math.isfinite(v) or (key.endswith("_std") and v <= 0):
                    raise ModelFileError(f"manifest field spec.normalization.{key}[{i}] must be a finite number"
                                         f"{' above 0' if key.endswith('_std') else ''}, got {v!r}")


def check_tensor(t: Any, where: str) -> None:
    _check_type(t, dict, where)
    if "name" not in t or "shape" not in t:
        raise ModelFileError(f"manifest field {where} must have a name and a shape")
    _check_fields(t, TENSOR, where)
    for i, axis in enumerate(t["shape"]):
        _check_type(axis, (int, str), f"{where}.shape[{i}]")


def check_variant(v: Any, where: str) -> None:
    _check_type(v, dict, where)
    missing = [k for k in VARIANT_REQUIRED if k not in v]
    if missing:
        raise ModelFileError(f"manifest field {where} lacks {', '.join(missing)}")
    _check_fields(v, VARIANT, where)
    check_plain_name(v["file"], f"{where}.file")
    if v["format"] not in FORMATS:
        raise ModelFileError(f"manifest field {where}.format must be one of {', '.join(FORMATS)}, got {v['format']!r}")
    if v["graph"] not in GRAPHS:
        raise ModelFileError(f"manifest field {where}.graph must be one of {', '.join(GRAPHS)}, got {v['graph']!r}")
    if not SHA256.fullmatch(v["sha256"]):
        raise ModelFileError(f"manifest field {where}.sha256 must be 64 hexadecimal digits, got {v['sha256'][:70]!r}")
    if v["size"] < 0:
        raise ModelFileError(f"manifest field {where}.size must not be negative, got {v['size']}")
    for side in ("inputs", "outputs"):
        for i, t in enumerate(v.get(side, [])):
            check_tensor(t, f"{where}.{side}[{i}]")
    for i, r in enumerate(v.get("requires", [])):
        _check_type(r, str, f"{where}.requires[{i}]")
    for i, r in enumerate(v.get("precision_report", [])):
        at = f"{where}.precision_report[{i}]"
        _check_type(r, dict, at)
        missing = [k for k in PRECISION_ENTRY if k not in r]
        if missing:
            raise ModelFileError(f"manifest field {at} lacks {', '.join(missing)}")
        _check_fields(r, PRECISION_ENTRY, at)
    for key, value in v.get("parity", {}).items():
        if key.startswith("max") or key.startswith("mean"):
            _check_type(value, Number, f"{where}.parity.{key}")
    quantization = v.get("quantization", {})
    _check_fields(quantization, QUANTIZATION, f"{where}.quantization")
    for key in ("fast_on", "slow_on"):
        for i, item in enumerate(quantization.get(key, [])):
            _check_type(item, str, f"{where}.quantization.{key}[{i}]")
    for key, value in quantization.get("latency", {}).items():
        if key.startswith("vs_") or key.endswith("_us"):
            _check_type(value, Number, f"{where}.quantization.latency.{key}")


def check_manifest(d: Any, *, spec_version: int, runtime_version: str) -> None:
    """Raise ``ModelFileError`` naming the first field of ``d`` (parsed manifest.json) that is wrong."""
    if not isinstance(d, dict):
        raise ModelFileError(f"manifest must be a JSON object, got {_got(d)}")
    check_version(d, runtime_version)
    for key in ("spec", "variants"):
        if key not in d:
            raise ModelFileError(f"manifest lacks the field {key}")
    _check_fields(d, TOP_LEVEL, "")
    check_spec(d["spec"], spec_version, runtime_version)
    probe = d.get("probe", {})
    if "x" in probe:
        _check_type(probe["x"], list, "probe.x")
    if "outputs" in probe:
        _check_type(probe["outputs"], dict, "probe.outputs")
        for name, values in probe["outputs"].items():
            _check_type(values, list, f"probe.outputs.{name}")
    for i, e in enumerate(d.get("not_written", [])):
        _check_type(e, dict, f"not_written[{i}]")
        _check_fields(e, NOT_WRITTEN, f"not_written[{i}]")
    names = set()
    for i, v in enumerate(d["variants"]):
        check_variant(v, f"variants[{i}]")
        if v["name"] in names:
            raise ModelFileError(f"manifest lists the variant {v['name']!r} twice")
        names.add(v["name"])
