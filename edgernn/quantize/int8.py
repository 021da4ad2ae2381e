"""int8: int8 weights and int8 matrix products, through onnxruntime's quantizer wherever it reaches.

Only ``MatMul`` nodes are quantized: they hold every weight of the step graph and of the Scan
window graph (``edgernn.export.onnx_window_scan``); biases and the elementwise gate arithmetic
stay float32, so everything here is generic ONNX (opset ≥ 13), no contrib ops.

Who writes which nodes:

- **int8-dynamic** (window and step): ``onnxruntime.quantization.quantize_dynamic`` with
  ``EnableSubgraph``, which enters the Scan bodies. Each MatMul becomes
  ``DynamicQuantizeLinear → MatMulInteger → Cast → Mul``: int8 weights, uint8 activations with
  scales computed at run time.
- **int8-static**, step graph and the window graph's main graph (the hoisted input projections
  and the head): ``onnxruntime.quantization.quantize_static`` in QDQ format, calibrated (MinMax)
  on feeds from ``edgernn.quantize.calibration``.
- **int8-static**, the recurrent ``h @ W_hh.T`` inside each Scan body: **written here**.
  onnxruntime 1.32's QDQ quantizer does not enter subgraphs (it leaves the body's MatMul float),
  and its QOperator mode, which does enter them, fails there because its calibrator only sees
  main-graph tensors. So we add the same QDQ pattern by hand: ``DequantizeLinear`` on the weight,
  stored int8 symmetric per tensor (scale ``max|W| / 127``, zero point 0), and
  ``QuantizeLinear → DequantizeLinear`` on ``h`` with a symmetric uint8 scale from the MinMax
  range of ``h``. That range is calibrated on the same windows: a Scan's per-step output *is*
  ``h_t``, so the range of ``h_{t-1}`` is that of the Scan output, widened to include 0 (the
  initial state). This is the scheme (``STATIC_OPTIONS``) ``quantize_static`` applies to the main graph.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgernn.errors import ExportError

QUANTIZED_OPS = ["MatMul"]
# Static: activations symmetric around 0 (normalised inputs and tanh-bounded states are centred),
# and a MatMul's float output is not re-quantized: it is added to the recurrent term at every step,
# so an 8-bit rounding there accumulates in the state (measured on a trained 2-layer LSTM, hidden
# 64: max abs error 0.21 with output quantization, 0.010 without).
STATIC_OPTIONS = {"ActivationSymmetric": True, "OpTypesToExcludeOutputQuantization": ["MatMul"]}


@contextmanager
def _quiet():
    """onnxruntime's quantizer logs advice (pre-processing) through the root logger; keep it off the CLI."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)


def _through_files(model: onnx.ModelProto, run: Callable[[str, str], None]) -> onnx.ModelProto:
    with tempfile.TemporaryDirectory(prefix="edgernn-quant.") as tmp, _quiet():
        src, dst = str(Path(tmp) / "in.onnx"), str(Path(tmp) / "out.onnx")
        onnx.save(model, src)
        run(src, dst)
        return onnx.load(dst)


def quantize_dynamic_graph(model: onnx.ModelProto) -> onnx.ModelProto:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    return _through_files(model, lambda src, dst: quantize_dynamic(
        src, dst, op_types_to_quantize=QUANTIZED_OPS, weight_type=QuantType.QInt8,
        extra_options={"EnableSubgraph": True, "MatMulConstBOnly": True},
    ))


def quantize_static_graph(model: onnx.ModelProto, reader) -> onnx.ModelProto:
    """QDQ over the main graph's MatMuls; Scan bodies are left to ``quantize_scan_bodies``."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    return _through_files(model, lambda src, dst: quantize_static(
        src, dst, reader, quant_format=QuantFormat.QDQ, op_types_to_quantize=QUANTIZED_OPS,
        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax,
        extra_options=STATIC_OPTIONS,
    ))


def scan_state_ranges(model_fp32: onnx.ModelProto, feeds: list[dict[str, np.ndarray]]) -> dict[str, tuple[float, float]]:
    """Per Scan node: the (min, max) of the hidden state over every step of ``feeds``, 0 included."""
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model_fp32)
    scans = {node.output[-1]: node.name for node in probe.graph.node if node.op_type == "Scan"}
    for y in scans:
        probe.graph.output.append(helper.make_tensor_value_info(y, TensorProto.FLOAT, None))
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    lo = {name: 0.0 for name in scans.values()}
    hi = dict(lo)
    for feed in feeds:
        for y, value in zip(scans, session.run(list(scans), feed)):
            lo[scans[y]] = min(lo[scans[y]], float(value.min()))
            hi[scans[y]] = max(hi[scans[y]], float(value.max()))
    return {name: (lo[name], hi[name]) for name in scans.values()}


def _uint8_params(lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric uint8 (zero point 128), as ``STATIC_OPTIONS`` asks of quantize_static."""
    scale = 2.0 * max(abs(lo), abs(hi)) / 255.0 or 1.0
    return np.array(scale, np.float32), np.array(128, np.uint8)


def quantize_scan_bodies(model: onnx.ModelProto, ranges: dict[str, tuple[float, float]]) -> onnx.ModelProto:
    """QDQ on every constant-weight MatMul of every Scan body (see the module docstring for why by hand)."""
    for scan in model.graph.node:
        if scan.op_type != "Scan":
            continue
        body = next(a.g for a in scan.attribute if a.name == "body")
        inits = {i.name: i for i in body.initializer}
        nodes = []
        for node in body.node:
            weight = inits.get(node.input[1]) if node.op_type == "MatMul" else None
            if weight is not None and weight.data_type == TensorProto.FLOAT:
                nodes.extend(_qdq_matmul_inputs(body, node, weight, *_uint8_params(*ranges[scan.name])))
            nodes.append(node)
        del body.node[:]
        body.node.extend(nodes)
    return model


def _qdq_matmul_inputs(body: onnx.GraphProto, matmul: onnx.NodeProto, weight: onnx.TensorProto,
                       a_scale: np.ndarray, a_zero_point: np.ndarray) -> list[onnx.NodeProto]:
    W = numpy_helper.to_array(weight)
    w_scale = np.array(max(float(np.abs(W).max()), 1e-12) / 127.0, np.float32)
    W_q = np.clip(np.round(W / w_scale), -127, 127).astype(np.int8)
    name, a = weight.name, matmul.input[0]
    body.initializer.remove(weight)
    body.initializer.extend([
        numpy_helper.from_array(W_q, f"{name}_quantized"),
        numpy_helper.from_array(w_scale, f"{name}_scale"),
        numpy_helper.from_array(np.array(0, np.int8), f"{name}_zero_point"),
        numpy_helper.from_array(a_scale, f"{a}_scale"),
        numpy_helper.from_array(a_zero_point, f"{a}_zero_point"),
    ])
    matmul.input[0] = f"{a}_dequantized"
    return [  # the weight's DequantizeLinear keeps the float name, so the MatMul reads it unchanged
        helper.make_node("DequantizeLinear", [f"{name}_quantized", f"{name}_scale", f"{name}_zero_point"], [name],
                         name=f"{name}_DequantizeLinear"),
        helper.make_node("QuantizeLinear", [a, f"{a}_scale", f"{a}_zero_point"], [f"{a}_quantized"],
                         name=f"{a}_QuantizeLinear"),
        helper.make_node("DequantizeLinear", [f"{a}_quantized", f"{a}_scale", f"{a}_zero_point"],
                         [f"{a}_dequantized"], name=f"{a}_DequantizeLinear"),
    ]


def finish(model: onnx.ModelProto, source: onnx.ModelProto, *, ir_version: int, opset: int,
           precision: str) -> tuple[onnx.ModelProto, tuple[str, ...]]:
    """Set IR version and opset on purpose, keep edgernn's metadata, drop shape-inference residue.

    Returns the model and the non-standard op domains it needs (e.g. ``com.microsoft``).
    """
    domains: set[str] = set()
    # Node names are optional in ONNX; the quantizer's long generated ones are ~2.5 % of an int8
    # file, so int8 files drop them (tensor names, which the precision report shows, stay).
    _tidy(model.graph, domains, drop_names=precision.startswith("int8"))
    default = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
    if default and default[0] != opset:
        raise ExportError(f"the {precision} quantizer wrote opset {default[0]}, expected {opset}; "
                          f"export with --opset {default[0]} or higher")
    kept = [o for o in model.opset_import if o.domain in ("", "ai.onnx") or o.domain in domains]
    del model.opset_import[:]
    model.opset_import.extend(kept)
    model.ir_version = ir_version
    props = {p.key: p.value for p in source.metadata_props}
    props["edgernn.precision"] = precision
    helper.set_model_props(model, props)
    model.producer_name = source.producer_name
    model.producer_version = source.producer_version
    onnx.checker.check_model(model, full_check=True)
    return model, tuple(sorted(d for d in domains if d not in ("", "ai.onnx")))


def _tidy(graph: onnx.GraphProto, domains: set[str], drop_names: bool) -> None:
    del graph.value_info[:]
    for node in graph.node:
        domains.add(node.domain)
        node.doc_string = ""
        if drop_names:
            node.name = ""
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                _tidy(attr.g, domains, drop_names)
