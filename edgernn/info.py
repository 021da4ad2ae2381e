"""What `edgernn info` reports about a bundle or a model file (runtime-only imports)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from edgernn.bundle import read_manifest
from edgernn.errors import ModelFileError
from edgernn.precisions import describe as describe_precision


def describe(path: Path) -> dict[str, Any]:
    path = Path(path)
    if path.is_dir():
        manifest = read_manifest(path)
        d = manifest.to_dict()
        d.pop("probe", None)
        d["bundle"] = str(path)
        # per variant: storage, compute, where it is fast, latency vs fp32 (old bundles: edgernn's table)
        d["precision_info"] = {v["name"]: describe_precision(v["format"], v["precision"], v.get("quantization"))
                               for v in d["variants"]}
        return d
    if not path.exists():
        raise ModelFileError(f"{path}: no such bundle directory or model file")
    if path.suffix == ".tflite":
        return _describe_tflite(path)
    if path.suffix != ".onnx":
        raise ModelFileError(f"{path}: not a model (expected a bundle folder, or a .onnx or .tflite file)")
    from edgernn.runtime.backends import OnnxBackend

    session = OnnxBackend(path).session
    meta = dict(session.get_modelmeta().custom_metadata_map)
    d: dict[str, Any] = {
        "file": str(path),
        "size": path.stat().st_size,
        "graph": meta.get("edgernn.graph"),
        "inputs": [{"name": i.name, "shape": list(i.shape), "type": i.type} for i in session.get_inputs()],
        "outputs": [{"name": o.name, "shape": list(o.shape), "type": o.type} for o in session.get_outputs()],
    }
    if "edgernn.spec" in meta:
        d["spec"] = json.loads(meta["edgernn.spec"])
    try:  # op counts and versions need the onnx package, which a device may not have
        import onnx

        model = onnx.load(str(path), load_external_data=False)
        d["ir_version"] = model.ir_version
        d["opset"] = {o.domain or "ai.onnx": o.version for o in model.opset_import}
        d["ops"] = dict(Counter(n.op_type for n in model.graph.node))
    except ImportError:
        pass
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
        d["spec"] = json.loads(meta["edgernn.spec"])
    return d
