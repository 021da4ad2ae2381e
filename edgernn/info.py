"""What `edgernn info` reports about a bundle or a model file (runtime-only imports)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from edgernn.bundle import missing_bundle, read_manifest
from edgernn.errors import EdgeRnnError, ModelFileError
from edgernn.spec import ModelSpec
from edgernn.precisions import describe as describe_precision
from edgernn.runtime.backends import OnnxBackend
from edgernn.runtime.tflite_backend import TfliteBackend, tflite_metadata
from edgernn.validate_graph import graph_inputs


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
        raise missing_bundle(path)
    if path.suffix == ".tflite":
        return _describe_tflite(path)
    if path.suffix != ".onnx":
        raise ModelFileError(f"{path}: not a model (expected a bundle folder, or a .onnx or .tflite file)")
    d: dict[str, Any] = {"file": str(path), "size": path.stat().st_size}
    failure = None
    try:
        backend = OnnxBackend(path)
        session = backend.session
    except ModelFileError as e:  # e.g. layout=1 nodes: described from the file alone, with the reason
        session, failure, d["onnxruntime"] = None, e, str(e).split(": ", 1)[-1]
    if session is not None:
        meta = backend.metadata
        d["graph"] = meta.get("edgernn.graph")
        d["inputs"] = backend.inputs
        d["outputs"] = backend.outputs
        if "edgernn.spec" in meta:
            d["spec"] = _spec(path, meta["edgernn.spec"])
    try:  # op counts, versions and recurrent nodes need the onnx package, which a device may not have
        import onnx
    except ImportError:
        if failure is not None:
            raise failure from None
        return d
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # protobuf's DecodeError and kin: the stricter onnx parser refuses it
        if failure is not None:
            raise failure from None
        raise ModelFileError(f"{path}: the onnx package cannot parse this model ({type(e).__name__}); "
                             "it is damaged") from None
    d["ir_version"] = model.ir_version
    d["opset"] = {o.domain or "ai.onnx": o.version for o in model.opset_import}
    d["ops"] = dict(Counter(n.op_type for n in model.graph.node))
    d["rnn_nodes"] = rnn_nodes(model)
    if session is None:
        d["inputs"] = [{"name": n, "shape": shape, "type": kind} for n, shape, kind in graph_inputs(path)]
        d["outputs"] = [{"name": o.name, "shape": [x.dim_value or x.dim_param or None for x in
                                                   o.type.tensor_type.shape.dim],
                         "type": f"tensor({onnx.helper.tensor_dtype_to_np_dtype(o.type.tensor_type.elem_type)})"}
                        for o in model.graph.output]
    return d


def rnn_nodes(model) -> list[dict[str, Any]]:
    """Every LSTM/GRU/RNN node of the main graph with its attributes (defaults filled in)."""
    import onnx

    out = []
    for k, n in enumerate(x for x in model.graph.node if x.op_type in ("LSTM", "GRU", "RNN")):
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
        attrs = {key: (v.decode() if isinstance(v, bytes) else [x.decode() if isinstance(x, bytes) else x for x in v]
                       if isinstance(v, list) else v) for key, v in attrs.items()}
        out.append({"name": n.name or f"{n.op_type}#{k}", "op": n.op_type,
                    "direction": attrs.pop("direction", "forward"), "hidden_size": attrs.pop("hidden_size", None),
                    "layout": attrs.pop("layout", 0), **attrs,
                    "inputs": [i for i in n.input], "outputs": [o for o in n.output]})
    return out


def _describe_tflite(path: Path) -> dict[str, Any]:
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
