"""Weight-only int8 for any ONNX model: int8 storage, float32 compute at float speed.

``quantize_weights_int8(model)`` rewrites every float32 weight initializer of the model's
``LSTM``/``GRU``/``RNN`` nodes (``W``, ``R``) and ``MatMul``/``Gemm`` nodes (the constant matrix) as

    W = Mul(Cast(W_int8, to=float32), scale)       scale: one float32 per output channel

under the weight's original name. Biases, activations and every op stay float32, so the graph is
the fp32 graph with its fused recurrent nodes; onnxruntime's constant folding turns each
``Mul(Cast(…))`` back into a float32 initializer when the session loads, and the model then runs
exactly as fast as fp32 (``DequantizeLinear`` would not be folded by default: onnxruntime keeps it
for its QDQ fusions). ``folded_nodes`` checks that on the session-optimized model.

Scales are symmetric, ``max |w| / 127`` per output channel: per gate unit of ``W``/``R`` (ONNX
layout ``(D, G·H, K)``), per column of a ``MatMul`` weight ``(K, N)``, per output row of a ``Gemm``
weight. Rounding is GPTQ (``edgernn.quantize.rounding.gptq``) where the Gram matrix ``AᵀA / n`` of
the product's activations is known, else to nearest. Grams come from ``activation_grams`` (run
the model on calibration inputs in onnxruntime and read each weight's input activation) or are
passed in, keyed by initializer name, so that two graphs holding the same weights (window and step)
get identical int8 values.

Works on any ``onnx.ModelProto`` (a graph from ``torch.onnx.export`` too): weights are found by the
node that consumes them, not by name. Initializers shared by several consumers, or with fewer than
``min_elements`` values, are left float32 and listed as skipped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgernn.quantize.rounding import round_columns

RECURRENT = ("LSTM", "GRU", "RNN")
DEQUANTIZE_OPS = ("Cast", "Mul", "DequantizeLinear")
MIN_ELEMENTS = 1  # every weight matrix by default; callers may leave small ones float32


@dataclass
class WeightSite:
    """One weight initializer a node multiplies an activation by."""

    name: str
    node: onnx.NodeProto
    role: str  # "W" | "R" | "B" (MatMul/Gemm weight)


@dataclass
class WeightOnlyResult:
    model: onnx.ModelProto
    quantized: dict[str, str] = field(default_factory=dict)  # initializer → "gptq" | "nearest"
    skipped: dict[str, str] = field(default_factory=dict)  # initializer → why it stayed float32
    grams: dict[str, np.ndarray] = field(default_factory=dict)  # what GPTQ used, for a twin graph


def weight_sites(graph: onnx.GraphProto, min_elements: int = MIN_ELEMENTS) -> tuple[list[WeightSite], dict[str, str]]:
    """The weights of ``graph`` and the float32 initializers that look like weights but are skipped."""
    inits = {i.name: i for i in graph.initializer}
    consumers: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            consumers[name] = consumers.get(name, 0) + 1
    sites, skipped = [], {}
    for node in graph.node:
        if node.op_type in RECURRENT:
            positions = ((1, "W"), (2, "R"))
        elif node.op_type in ("MatMul", "Gemm"):
            positions = ((1, "B"),)
        else:
            continue
        for i, role in positions:
            name = node.input[i] if i < len(node.input) else ""
            init = inits.get(name)
            if init is None or init.data_type != TensorProto.FLOAT:
                continue
            size = int(np.prod(init.dims)) if init.dims else 1
            if consumers.get(name, 0) > 1:
                skipped[name] = "shared by several nodes"
            elif len(init.dims) < 2 or size < min_elements:
                skipped[name] = f"{size} values: too small to be worth an int8 copy"
            elif node.op_type == "MatMul" and len(init.dims) != 2:
                skipped[name] = f"a batched MatMul weight of shape {list(init.dims)}"
            else:
                sites.append(WeightSite(name, node, role))
    return sites, skipped


def _as_products(site: WeightSite, w: np.ndarray) -> list[np.ndarray]:
    """The weight as (K, N) matrices ``a @ M``: one per direction for a recurrent node."""
    if site.node.op_type in RECURRENT:
        return [w[d].T for d in range(w.shape[0])]  # (D, N, K) → D × (K, N)
    if site.node.op_type == "Gemm" and _attr(site.node, "transB"):
        return [w.T]  # (N, K) → (K, N)
    return [w]


def _from_products(site: WeightSite, mats: list[np.ndarray]) -> np.ndarray:
    if site.node.op_type in RECURRENT:
        return np.stack([m.T for m in mats])
    if site.node.op_type == "Gemm" and _attr(site.node, "transB"):
        return mats[0].T
    return mats[0]


def _attr(node: onnx.NodeProto, name: str) -> int:
    return next((helper.get_attribute_value(a) for a in node.attribute if a.name == name), 0)


def quantize_weights_int8(
    model: onnx.ModelProto,
    *,
    calibration: Mapping[str, np.ndarray] | None = None,
    grams: Mapping[str, np.ndarray] | None = None,
    min_elements: int = MIN_ELEMENTS,
) -> WeightOnlyResult:
    """A copy of ``model`` with int8 weights (see the module docstring).

    ``calibration``: feeds for the model (e.g. ``{"x": windows}``); each weight is then rounded by
    GPTQ against its activations. ``grams``: Gram matrices by initializer name instead (``(K, K)``,
    or ``(D, K, K)`` for a recurrent weight), e.g. the ``grams`` of a previous result."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    sites, skipped = weight_sites(graph, min_elements)
    known = dict(grams or {})
    if calibration is not None:
        known.update(activation_grams(model, calibration, sites))
    result = WeightOnlyResult(out, skipped=skipped)
    inits = {i.name: i for i in graph.initializer}
    dequantize = []
    for site in sites:
        init = inits[site.name]
        w = numpy_helper.to_array(init).astype(np.float64)
        mats = _as_products(site, w)
        q, scales, result.quantized[site.name] = round_columns(mats, known.get(site.name))  # (N,) scales each
        if known.get(site.name) is not None:
            result.grams[site.name] = np.asarray(known[site.name])
        w_int8 = _from_products(site, q)
        scale = _channel_scale(site, np.stack(scales).astype(np.float32))  # (D or 1, N)
        graph.initializer.remove(init)
        graph.initializer.extend([numpy_helper.from_array(w_int8, f"{site.name}_int8"),
                                  numpy_helper.from_array(scale, f"{site.name}_scale")])
        cast = helper.make_node("Cast", [f"{site.name}_int8"], [f"{site.name}_int8_f32"], to=TensorProto.FLOAT)
        dequantize += [cast, helper.make_node("Mul", [cast.output[0], f"{site.name}_scale"], [site.name])]
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(dequantize + nodes)  # dequantize first: the node list stays topologically sorted
    return result


def _channel_scale(site: WeightSite, scales: np.ndarray) -> np.ndarray:
    """``scales`` (D, N) as the tensor that broadcasts against the stored weight: one value per output channel."""
    if site.node.op_type in RECURRENT:
        return np.ascontiguousarray(scales[:, :, None])  # (D, N, 1) against (D, N, K)
    if site.node.op_type == "Gemm" and _attr(site.node, "transB"):
        return np.ascontiguousarray(scales[0][:, None])  # (N, 1) against (N, K)
    return np.ascontiguousarray(scales[0])  # (N,) against (K, N)


def activation_grams(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray], sites: list[WeightSite] | None = None,
                     batch: int = 256) -> dict[str, np.ndarray]:
    """``AᵀA / n`` of every weight's input activation, from running ``model`` on ``feeds`` in
    onnxruntime (the first axis of every feed is the batch). A recurrent node's ``R`` multiplies the
    previous hidden state: read from its output ``Y`` (none when ``Y`` is not produced)."""
    import onnxruntime as ort

    sites = sites if sites is not None else weight_sites(model.graph)[0]
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    wanted: dict[str, str] = {}  # tensor to read → its role
    for site in sites:
        tensor = site.node.input[0] if site.role != "R" else (site.node.output[0] if site.node.output else "")
        if tensor:
            wanted[tensor] = site.role
    names = {o.name for o in probe.graph.output}
    for tensor in wanted:
        if tensor not in names:
            probe.graph.output.append(helper.make_tensor_value_info(tensor, TensorProto.FLOAT, None))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep every tensor readable
    session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
    total = len(next(iter(feeds.values())))
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    for start in range(0, total, batch):
        part = {k: np.asarray(v[start : start + batch]) for k, v in feeds.items()}
        values = dict(zip(list(wanted), session.run(list(wanted), part)))
        for site in sites:
            gram, n = _site_gram(site, values)
            if gram is not None:
                sums[site.name] = sums.get(site.name, 0) + gram
                counts[site.name] = counts.get(site.name, 0) + n
    return {name: sums[name] / max(counts[name], 1) for name in sums}


def _site_gram(site: WeightSite, values: Mapping[str, np.ndarray]) -> tuple[np.ndarray | None, int]:
    """The unnormalised Gram (``(K, K)`` or ``(D, K, K)``) of one site's activations and their count."""
    node = site.node
    if node.op_type in RECURRENT:
        if site.role == "W":
            x = values[node.input[0]].astype(np.float64)  # (T, B, K) sequence-first (layout 0)
            a = x.reshape(-1, x.shape[-1])
            D = 2 if _attr_str(node, "direction") == "bidirectional" else 1
            return np.stack([a.T @ a] * D), a.shape[0]
        y = values.get(node.output[0]) if node.output and node.output[0] else None
        if y is None:
            return None, 0
        y = y.astype(np.float64)  # (T, D, B, H); direction d's product takes h of the step before
        reverse = _attr_str(node, "direction") == "reverse"
        grams = []
        for d in range(y.shape[1]):
            h = y[1:, d] if (reverse or d == 1) else y[:-1, d]  # the states fed back (plus a zero start)
            h = h.reshape(-1, h.shape[-1])
            grams.append(h.T @ h)
        return np.stack(grams), y.shape[0] * y.shape[2]
    a = values[node.input[0]].astype(np.float64)
    if node.op_type == "Gemm" and _attr(node, "transA"):
        a = a.T
    a = a.reshape(-1, a.shape[-1])
    return a.T @ a, a.shape[0]


def _attr_str(node: onnx.NodeProto, name: str) -> str:
    value = next((helper.get_attribute_value(a) for a in node.attribute if a.name == name), b"forward")
    return value.decode() if isinstance(value, bytes) else str(value)


def folded_nodes(model_bytes: bytes, optimized_path: str) -> list[str]:
    """Load ``model_bytes`` in onnxruntime (default optimisations), save the session-optimized model
    to ``optimized_path``, and return the dequantize nodes (``Cast``/``Mul``/``DequantizeLinear`` fed
    by an int8 initializer) still in it: empty when every weight was folded to float32 at load."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # not the warning that an optimized model is machine-specific
    options.optimized_model_filepath = optimized_path
    ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
    optimized = onnx.load(optimized_path)
    int8 = {i.name for i in optimized.graph.initializer if i.data_type in (TensorProto.INT8, TensorProto.UINT8)}
    return [f"{n.op_type}({', '.join(n.input)})" for n in optimized.graph.node
            if n.op_type in DEQUANTIZE_OPS and any(i in int8 for i in n.input)]
