"""int8 variants: int8 weights and int8 matrix products in every MatMul of the window and step graphs.

The int8 window graph is the Scan graph of ``edgernn.export.onnx_window_scan`` (hoisted input
projections, a ``Scan`` per direction whose body holds the recurrent product, the head), the int8
step graph its one-step twin; both are written with ``edgernn.quantize.int8_matmul.Int8MatMul`` as
their ``MatMulWriter``, so every weight — recurrent ones included, LSTM and GRU alike — is an int8
``MatMulInteger`` operand with one scale per output column. Biases, gates and the state stay float32.
All ops are standard ONNX (opset ≥ 13); no contrib ops.

Both int8 variants:

- round the weights by GPTQ (``edgernn.quantize.rounding``) against the activations of the
  calibration windows (the training split by default), or to nearest when there are none;
- quantize every product's activation in two int8 passes (coarse + residual, ~15 bits).

They differ in the activations' scales: **int8-dynamic** computes one per row at run time (no data
needed, a window's result independent of its batch); **int8-static** fixes them at export: the
network input's from its calibrated range (MinMax, with headroom), every hidden state's from the
cell's bound ``|h| < 1`` (``h = o · tanh(c)`` for LSTM, a convex mix of ``tanh`` values and the
zero start for GRU).

Why each of these choices, measured (GPTQ, two passes, the cell's bound for the states):
docs/design-quantization-notes.md, "Measurements behind the code".

The graphs are written here, not by onnxruntime's quantizer, so that every product is an int8
``MatMulInteger`` the runtime cannot turn back into float (why: the same notes).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import onnx

from edgernn.errors import ExportError
from edgernn.export.onnx_window_scan import build_scan_window_graph, build_split_step_graph, site_activations
from edgernn.quantize.calibration import SiteStatistics
from edgernn.quantize.int8_matmul import ActivationQuant, Int8MatMul
from edgernn.spec import ModelSpec

NETWORK_INPUT = "W_ih_T_l0"  # the sites (weights) whose activation is the network's input x
STATE_BOUND = 1.0  # |h| < 1 for both cells


def activation_quant(spec: ModelSpec, precision: str) -> dict[str, ActivationQuant]:
    """How every product's activation is quantized in ``precision`` (see the module docstring)."""
    scale = "row" if precision == "int8-dynamic" else "fixed"
    return {site: ActivationQuant(scale, passes=2) for site in site_activations(spec)}


def fixed_ranges(spec: ModelSpec, statistics: SiteStatistics) -> dict[str, tuple[float, float]]:
    """int8-static's ranges: the network input's as calibrated, every other activation (a hidden
    state: the recurrent products', deeper layers' inputs, the head's) the cell's bound ±1."""
    return {site: statistics.ranges[site] if site.startswith(NETWORK_INPUT) else (-STATE_BOUND, STATE_BOUND)
            for site in statistics.ranges}


def int8_graphs(
    spec: ModelSpec,
    weights: Mapping[str, np.ndarray],
    precision: str,
    *,
    statistics: SiteStatistics | None,
    step: bool,
    ir_version: int,
    opset: int,
) -> dict[str, onnx.ModelProto]:
    """The int8 window graph (and step graph when ``step``) of ``precision``. ``statistics`` (from the
    calibration windows) give GPTQ its Gram matrices and int8-static its input range; int8-dynamic
    without them rounds the weights to nearest."""
    if opset < 13:
        raise ExportError(f"{precision} graphs need opset 13 or newer, got {opset}")
    if precision == "int8-static" and statistics is None:
        raise ExportError("int8-static needs calibration statistics")
    writer = Int8MatMul(activation_quant(spec, precision), opset=opset,
                        ranges=fixed_ranges(spec, statistics) if precision == "int8-static" else None,
                        grams=statistics.grams if statistics is not None else None)
    graphs = {"window": build_scan_window_graph(spec, weights, matmul=writer, ir_version=ir_version, opset=opset)}
    if step:
        graphs["step"] = build_split_step_graph(spec, weights, matmul=writer, ir_version=ir_version, opset=opset)
    return graphs


def finish(model: onnx.ModelProto, source: onnx.ModelProto, *, ir_version: int, opset: int,
           precision: str) -> tuple[onnx.ModelProto, tuple[str, ...]]:
    """Set IR version and opset on purpose, keep edgernn's metadata, drop shape-inference residue.

    Returns the model and the non-standard op domains it needs (e.g. ``com.microsoft``).
    """
    domains: set[str] = set()
    # Node names are optional in ONNX and the names of intermediate tensors are only labels: in an
    # int8 file, where weights are a quarter of their fp32 bytes, they are ~10 % of the file, so int8
    # files drop node names and number intermediate tensors. The names of inputs, outputs, Scan
    # bodies' inputs and outputs, and initializers (which the precision report shows) stay.
    _tidy(model.graph, domains, drop_names=precision.startswith("int8"))
    if precision.startswith("int8"):
        _number_intermediates(model.graph, iter(range(1 << 30)))
    default = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
    if default and default[0] != opset:
        raise ExportError(f"the {precision} graph has opset {default[0]}, expected {opset}")
    kept = [o for o in model.opset_import if o.domain in ("", "ai.onnx") or o.domain in domains]
    del model.opset_import[:]
    model.opset_import.extend(kept)
    model.ir_version = ir_version
    props = {p.key: p.value for p in source.metadata_props}
    props["edgernn.precision"] = precision
    onnx.helper.set_model_props(model, props)
    model.producer_name = source.producer_name
    model.producer_version = source.producer_version
    onnx.checker.check_model(model, full_check=True)
    return model, tuple(sorted(d for d in domains if d not in ("", "ai.onnx")))


def _number_intermediates(graph: onnx.GraphProto, counter) -> None:
    """Rename every tensor a node of ``graph`` (or of a subgraph) produces, except the graph's outputs,
    to ``_<n>`` (base 36), unique across all graphs of the model."""
    kept = {o.name for o in graph.output}
    renamed: dict[str, str] = {}
    for node in graph.node:
        for i, name in enumerate(node.output):
            if name and name not in kept:
                renamed[name] = node.output[i] = f"_{np.base_repr(next(counter), 36).lower()}"
    for node in graph.node:
        for i, name in enumerate(node.input):
            node.input[i] = renamed.get(name, name)
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                _rename_outer(attr.g, renamed)
                _number_intermediates(attr.g, counter)


def _rename_outer(graph: onnx.GraphProto, renamed: dict[str, str]) -> None:
    """Apply ``renamed`` to a subgraph's references to tensors of its enclosing graph."""
    local = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {o for n in graph.node for o in n.output}
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name not in local:
                node.input[i] = renamed.get(name, name)
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                _rename_outer(attr.g, renamed)


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
