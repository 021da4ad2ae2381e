"""What `edgernn info` reports about a bundle or a model file (runtime-only imports)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from edgernn.bundle import missing_bundle, read_manifest
from edgernn.errors import EdgeRnnError, ModelFileError
from edgernn.spec import ModelSpec


def describe(path: Path) -> dict[str, Any]:
    path = Path(path)
    if path.is_dir():
        manifest = read_manifest(path)
        d = manifest.to_dict()
        d.pop("probe", None)
        d["bundle"] = str(path)
        return d
    if not path.exists():
        raise missing_bundle(path)
    if path.suffix == ".tflite":
        return _describe_tflite(path)
    if path.suffix != ".onnx":
        raise ModelFileError(f"{path}: not a model (expected a bundle folder, or a .onnx or .tflite file)")
    from edgernn.runtime.backends import OnnxBackend

    backend = OnnxBackend(path)
    meta = backend.metadata
    d: dict[str, Any] = {
        "file": str(path),
        "size": path.stat().st_size,
        "graph": meta.get("edgernn.graph"),
        "inputs": backend.inputs,
        "outputs": backend.outputs,
    }
    if "edgernn.spec" in meta:
        d["spec"] = _spec(path, meta["edgernn.spec"])
    try:  # op counts and versions need the onnx package, which a device may not have
        import onnx

        model = onnx.load(str(path), load_external_data=False)
        d["ir_version"] = model.ir_version
        d["opset"] = {o.domain or "ai.onnx": o.version for o in model.opset_import}
        d["ops"] = dict(Counter(n.op_type for n in model.graph.node))
    except ImportError:
        pass
    except Exception as e:  # protobuf's DecodeError and kin: onnxruntime read it, the stricter onnx parser does not
        raise ModelFileError(f"{path}: the onnx package cannot parse this model ({type(e).__name__}); "
                             "it is damaged") from None
    return d


def _describe_tflite(path: Path) -> dict[str, Any]:
    from edgernn.runtime.tflite_backend import TfliteBackend, tflite_metadata

    meta = tflite_metadata(path.read_bytes())
    interpreter = TfliteBackend(path).interpreter
    d: dict[str, Any] = {
        "file": str(path),
        "size": path.stat().st_size,
        "graph": meta.get("edgernn.graph"),
        "precision": meta.get("edgernn.precision"),
        "inputs": [{"name": t["name"], "shape": [int(v) for v in t["shape_signature"]], "type": str(t["dtype"].__name__)}
                   for t in interpreter.get_input_details()],
        "outputs": [{"name": t["name"], "shape": [int(v) for v in t["shape_signature"]], "type": str(t["dtype"].__name__)}
                    for t in interpreter.get_output_details()],
    }
    if "edgernn.spec" in meta:
        d["spec"] = _spec(path, meta["edgernn.spec"])
    return d


def _spec(path: Path, text: str) -> dict[str, Any]:
    """The embedded spec, checked as the runtime checks it; a damaged one is one line."""
    try:
        return ModelSpec.from_json(text).to_dict()
    except EdgeRnnError as e:
        raise ModelFileError(f"{path}: its embedded edgernn spec is damaged ({e})") from None
