"""``edgernn validate model.onnx``: every LSTM/GRU/RNN node of any ONNX file against the NumPy reference.

Polygraphy's ``run --onnxrt --validate`` runs a file and checks its outputs are finite; this does the
same for recurrent nodes and adds an independent reference for each one:

1. A copy of the model exposes each recurrent node's computed inputs and all its outputs as extra
   graph outputs; onnxruntime runs the copy once on the feeds (given by name, or drawn: floats
   N(0, 1), unknown axes 4, ``sequence_lens`` graph inputs between 1 and the sequence length).
2. Each node's inputs (initializers read from the file, the rest from that run) go through
   ``edgernn.reference_onnx`` in float64; every output the node produces is compared with
   onnxruntime's, at the float32 tolerance (float16 nodes: fp16's).
3. The report lists every node and output, and any graph output holding NaN or inf; the CLI exits
   1 when any differs (or is not finite), naming them.

onnxruntime does not implement ``layout=1`` (batch-first) recurrent nodes: in the copy, such a node
runs as ``layout=0`` between Transposes (same tensor names), and the report says so; the reference
computes it in layout 1. Recurrent nodes inside subgraphs (Loop, Scan, If) are listed as
not checked.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edgernn.errors import BadInputError, ModelFileError
from edgernn.parity import TOLERANCES, compare
from edgernn.reference_onnx import GATES, onnx_rnn
from edgernn.runtime.backends import load_failure

UNKNOWN_AXIS = 4
SEQ_LENS_SLOT = 4


@dataclass
class NodeCheck:
    node: str
    op: str
    output: str  # the output's tensor name
    slot: str  # Y | Y_h | Y_c
    shape: tuple
    max_abs: float
    max_rel: float
    passed: bool

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class GraphReport:
    file: str
    checks: list[NodeCheck] = field(default_factory=list)
    not_checked: list[str] = field(default_factory=list)  # recurrent nodes in subgraphs
    tolerance: dict = field(default_factory=dict)
    drawn_inputs: list[str] = field(default_factory=list)
    time_major: list[str] = field(default_factory=list)  # layout=1 nodes run by onnxruntime as layout=0 + Transposes
    not_finite: list[str] = field(default_factory=list)  # graph outputs holding NaN or inf (as Polygraphy --validate)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks) and not self.not_finite

    def failures(self) -> list[str]:
        return [f"node '{c.node}' ({c.op}) output {c.slot} '{c.output}' differs from the NumPy reference: max abs "
                f"{c.max_abs:.3g}" for c in self.checks if not c.passed] + [f"graph output '{n}' holds NaN or inf" for n in self.not_finite]

    def to_dict(self) -> dict:
        return {"file": self.file, "passed": self.passed, "tolerance": self.tolerance,
                "drawn_inputs": self.drawn_inputs, "not_finite": self.not_finite, "layout_1_run_as_layout_0": self.time_major,
                "not_checked": self.not_checked,
                "checks": [c.to_dict() for c in self.checks]}


def graph_inputs(path: Path | str) -> list[tuple[str, list, str]]:
    """The file's inputs (not initializers) as (name, shape, ``tensor(<type>)``), read without onnxruntime
    (which cannot open every file: layout=1)."""
    import onnx
    from onnx import helper

    model = onnx.load(str(path), load_external_data=False)
    inits = {i.name for i in model.graph.initializer}
    out = []
    for v in model.graph.input:
        if v.name in inits:
            continue
        t = v.type.tensor_type
        kind = np.dtype(helper.tensor_dtype_to_np_dtype(t.elem_type)).name
        kind = {"float32": "float", "float64": "double"}.get(kind, kind)
        out.append((v.name, [d.dim_value if d.dim_value > 0 else (d.dim_param or None) for d in t.shape.dim],
                    f"tensor({kind})"))
    return out


def label(node, k: int) -> str:
    """A node's name, or ``LSTM#0`` (op and place among the recurrent nodes) when it has none."""
    return node.name or f"{node.op_type}#{k}"


def _attrs(node) -> dict:
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _subgraph_rnns(graph, prefix="") -> list[str]:
    import onnx

    found = []
    for node in graph.node:
        for a in node.attribute:
            subs = [a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs)
            for g in subs:
                found += [f"{prefix}{node.name or node.op_type}/{n.name or n.op_type} ({n.op_type})"
                          for n in g.node if n.op_type in GATES]
                found += _subgraph_rnns(g, f"{prefix}{node.name or node.op_type}/")
    return found


def _draw_feeds(model, rnns, given: dict, seed: int) -> tuple[dict, list[str]]:
    """Feeds for graph inputs not given: floats N(0, 1); sequence_lens in 1..T; other integers refused."""
    from onnx import helper

    rng = np.random.default_rng(seed)
    inits = {i.name for i in model.graph.initializer}
    feeds, drawn = dict(given), []
    seq_len_of = {n.input[SEQ_LENS_SLOT]: n for n in rnns if len(n.input) > SEQ_LENS_SLOT and n.input[SEQ_LENS_SLOT]}
    pending = []
    for v in model.graph.input:
        if v.name in inits or v.name in feeds:
            continue
        t = v.type.tensor_type
        shape = tuple(d.dim_value if d.dim_value > 0 else UNKNOWN_AXIS for d in t.shape.dim)
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(t.elem_type))
        if v.name in seq_len_of:
            pending.append((v.name, shape, dtype))
        elif np.issubdtype(dtype, np.floating):
            feeds[v.name] = rng.standard_normal(shape).astype(dtype)
            drawn.append(v.name)
        else:
            raise BadInputError(f"input '{v.name}' is {dtype.name}: edgernn does not guess its values; give every "
                                "input by name with --input FILE.npz")
    for name, shape, dtype in pending:  # each sequence's length: 1..T of the node's X
        node = seq_len_of[name]
        x = feeds.get(node.input[0])
        layout = int(_attrs(node).get("layout", 0))
        T = x.shape[1 if layout else 0] if x is not None else UNKNOWN_AXIS
        lens = rng.integers(1, T + 1, size=shape)
        lens.flat[0] = T
        feeds[name] = lens.astype(dtype)
        drawn.append(name)
    return feeds, drawn


def _batch_first_as_time_major(graph, node) -> bool:
    """Rewrite a ``layout=1`` node (which onnxruntime does not implement) in place as a ``layout=0`` node
    between Transposes, with the same input and output names. True when rewritten."""
    from onnx import helper

    layout = next((a for a in node.attribute if a.name == "layout"), None)
    if layout is None or layout.i != 1:
        return False
    layout.i = 0
    before, after = [], []
    for slot in (0, 5, 6):  # X (B, T, F) → (T, B, F); initial_h/c (B, D, H) → (D, B, H)
        if slot < len(node.input) and node.input[slot]:
            name = f"{node.input[slot]}__time_major_{node.name}"
            before.append(helper.make_node("Transpose", [node.input[slot]], [name], perm=[1, 0, 2]))
            node.input[slot] = name
    for slot, perm in ((0, [2, 0, 1, 3]), (1, [1, 0, 2]), (2, [1, 0, 2])):  # Y (T, D, B, H) → (B, T, D, H) …
        if slot < len(node.output) and node.output[slot]:
            name = f"{node.output[slot]}__time_major_{node.name}"
            after.append(helper.make_node("Transpose", [name], [node.output[slot]], perm=perm))
            node.output[slot] = name
    nodes = list(graph.node)
    k = next(i for i, n in enumerate(nodes) if n is node)
    del graph.node[:]
    graph.node.extend(nodes[:k] + before + [node] + after + nodes[k + 1:])
    return True


def _exposed(model, rnns) -> tuple[bytes, list[str]]:
    """A copy of ``model`` whose outputs also include every recurrent node's computed inputs and outputs."""
    import onnx
    from onnx import TensorProto, helper

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    try:
        inferred = onnx.shape_inference.infer_shapes(copy)
        types = {v.name: v.type.tensor_type.elem_type for v in (*inferred.graph.value_info, *inferred.graph.input,
                                                                  *inferred.graph.output)}
    except Exception:  # shape inference is a convenience: the types below are the operators' own
        types = {}
    known = {o.name for o in copy.graph.output} | {i.name for i in copy.graph.initializer} | \
        {i.name for i in copy.graph.input}
    extra = []
    for node in rnns:
        for slot, name in enumerate(list(node.input) + list(node.output)):
            if not name or name in known or name in extra:
                continue
            is_seq_lens = slot == SEQ_LENS_SLOT and slot < len(node.input)
            elem = types.get(name) or (TensorProto.INT32 if is_seq_lens else TensorProto.FLOAT)
            copy.graph.output.append(helper.make_tensor_value_info(name, elem, None))
            extra.append(name)
    rnn_copies = [n for n in list(copy.graph.node) if n.op_type in GATES and n.domain in ("", "ai.onnx")]
    rewritten = [label(n, k) for k, n in enumerate(rnn_copies) if _batch_first_as_time_major(copy.graph, n)]
    return copy.SerializeToString(), rewritten


def _session(data: bytes, path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 4
    try:
        return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    except Exception as e:
        raise ModelFileError(f"{path}: {load_failure(str(e), ort.__version__)}") from None


def validate_graph(path: Path | str, *, feeds: dict[str, np.ndarray] | None = None, seed: int = 0) -> GraphReport:
    """Check every top-level LSTM/GRU/RNN node of an ONNX file against ``edgernn.reference_onnx``."""
    import onnx
    from onnx import numpy_helper

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such ONNX file")
    try:
        model = onnx.load(str(path))
    except Exception as e:
        raise ModelFileError(f"{path}: not a readable ONNX file ({type(e).__name__}: {e})") from None
    rnns = [n for n in model.graph.node if n.op_type in GATES and n.domain in ("", "ai.onnx")]
    report = GraphReport(str(path), not_checked=_subgraph_rnns(model.graph))
    if not rnns:
        raise BadInputError(f"{path}: no LSTM, GRU or RNN node in the main graph"
                            + (f" (in subgraphs: {', '.join(report.not_checked)}, not checked)" if report.not_checked else ""))
    feeds, report.drawn_inputs = _draw_feeds(model, rnns, dict(feeds or {}), seed)
    data, report.time_major = _exposed(model, rnns)
    session = _session(data, path)
    names = [o.name for o in session.get_outputs()]
    inputs = {i.name for i in session.get_inputs()}
    unknown = sorted(set(feeds) - inputs)
    if unknown:
        raise BadInputError(f"{path}: no inputs named {', '.join(unknown)}; it takes {', '.join(sorted(inputs))}")
    try:
        values = dict(zip(names, session.run(None, {k: v for k, v in feeds.items() if k in inputs})))
    except Exception as e:
        first = " ".join(str(e).split())[:300]
        raise BadInputError(f"{path}: onnxruntime could not run it on these inputs ({first})") from None
    report.not_finite = [o.name for o in model.graph.output if o.name in values
                         and np.issubdtype(values[o.name].dtype, np.floating) and not np.all(np.isfinite(values[o.name]))]
    values.update({i.name: numpy_helper.to_array(i) for i in model.graph.initializer})
    values.update(feeds)
    float16 = False
    for node in rnns:
        ins = [values[name] if name else None for name in node.input]
        float16 |= ins[0].dtype == np.float16
        want = onnx_rnn(node.op_type, ins, _attrs(node))
        tol = TOLERANCES["fp16" if ins[0].dtype == np.float16 else "fp32"]
        for slot, (name, ref) in enumerate(zip(node.output, want)):
            if not name:
                continue
            got = values[name]
            max_abs, max_rel, _, ok = compare(got, ref, tol)
            report.checks.append(NodeCheck(label(node, rnns.index(node)), node.op_type, name,
                                           ("Y", "Y_h", "Y_c")[slot], tuple(got.shape), max_abs, max_rel, ok))
    tol = TOLERANCES["fp16" if float16 else "fp32"]
    report.tolerance = {"atol": tol.atol, "rtol": tol.rtol}
    return report
