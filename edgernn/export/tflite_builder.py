"""A small writer of TFLite (LiteRT) flatbuffers: tensors, constants and ops, one by one.

Like ``graph_builder`` for ONNX: the TFLite graphs are written directly from a ``ModelSpec`` and
its weights with the schema's object API (shipped in ``ai-edge-litert``), so no tracing and no
converter run — export takes milliseconds and every op in the file is one we chose. The schema is
imported inside functions: ``import edgernn.export`` stays free of the TFLite tool chain.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgernn.errors import MissingDependencyError

SIGNATURE_KEY = "serving_default"

# numpy dtype name → TFLite TensorType name
TENSOR_TYPES = {"float32": "FLOAT32", "float16": "FLOAT16", "int32": "INT32", "int8": "INT8",
                "int64": "INT64", "bool": "BOOL"}

# op → its BuiltinOptions table (ops absent here take no options)
OPTIONS = {
    "ADD": "AddOptions", "SUB": "SubOptions", "MUL": "MulOptions",
    "FULLY_CONNECTED": "FullyConnectedOptions", "CONCATENATION": "ConcatenationOptions",
    "SPLIT": "SplitOptions", "UNPACK": "UnpackOptions", "PACK": "PackOptions",
    "GATHER": "GatherOptions", "TRANSPOSE": "TransposeOptions", "SHAPE": "ShapeOptions",
    "FILL": "FillOptions", "WHILE": "WhileOptions", "LESS": "LessOptions",
    "QUANTIZE": "QuantizeOptions", "DEQUANTIZE": "DequantizeOptions",
}


def schema():
    """LiteRT's generated flatbuffer schema module (``ai-edge-litert``)."""
    try:
        from ai_edge_litert import schema_py_generated
    except ImportError:
        raise MissingDependencyError("ai-edge-litert", "tflite", "writing a TFLite model") from None
    return schema_py_generated


def to_bytes(model) -> bytes:
    """Serialise a ``ModelT`` with the TFLite file identifier."""
    from ai_edge_litert.tools import flatbuffer_utils

    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def from_bytes(data: bytes):
    """A mutable ``ModelT`` from a .tflite file's bytes."""
    from ai_edge_litert.tools import flatbuffer_utils

    return flatbuffer_utils.read_model_from_bytearray(bytearray(data))


def make_operator(model, op_type: str, inputs: list[int], outputs: list[int], version: int = 1, **options):
    """An ``OperatorT`` of a builtin op, registering its op code in ``model`` when new."""
    s = schema()
    code = getattr(s.BuiltinOperator, op_type)
    for index, oc in enumerate(model.operatorCodes):
        if oc.builtinCode == code and oc.version == version:
            break
    else:
        oc = s.OperatorCodeT()
        oc.builtinCode, oc.deprecatedBuiltinCode, oc.version = code, min(code, 127), version
        model.operatorCodes.append(oc)
        index = len(model.operatorCodes) - 1
    op = s.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = index, list(inputs), list(outputs)
    if op_type in OPTIONS:
        table = OPTIONS[op_type]
        opts = getattr(s, f"{table}T")()
        for key, value in options.items():
            setattr(opts, key, value)
        op.builtinOptionsType, op.builtinOptions = getattr(s.BuiltinOptions, table), opts
    return op


def new_model(description: str):
    s = schema()
    model = s.ModelT()
    model.version, model.description = 3, description
    model.operatorCodes, model.subgraphs, model.signatureDefs = [], [], []
    model.buffers = [s.BufferT()]  # buffer 0: the empty sentinel every tensor without data points at
    return model


@dataclass
class SubgraphWriter:
    """Appends tensors and ops to one subgraph of ``model``; names follow the equations."""

    model: Any
    name: str
    graph: Any = field(init=False)

    def __post_init__(self) -> None:
        s = schema()
        self.graph = s.SubGraphT()
        self.graph.name, self.graph.tensors, self.graph.operators = self.name, [], []
        self.graph.inputs, self.graph.outputs = [], []
        self.model.subgraphs.append(self.graph)

    @classmethod
    def existing(cls, model, graph) -> SubgraphWriter:
        """A writer that appends to a subgraph already in ``model``."""
        g = cls.__new__(cls)
        g.model, g.name, g.graph = model, graph.name, graph
        return g

    @property
    def index(self) -> int:
        return self.model.subgraphs.index(self.graph)

    def tensor(self, name: str, shape: list[int | str], dtype: str = "float32", buffer: int = 0) -> int:
        """A tensor; symbolic axes ("batch", "time") become 1 in ``shape`` and -1 in its signature."""
        s = schema()
        t = s.TensorT()
        t.name, t.buffer = name, buffer
        t.type = getattr(s.TensorType, TENSOR_TYPES[dtype])
        t.shape = [d if isinstance(d, int) else 1 for d in shape]
        if any(not isinstance(d, int) for d in shape):
            t.shapeSignature = [d if isinstance(d, int) else -1 for d in shape]
        self.graph.tensors.append(t)
        return len(self.graph.tensors) - 1

    def const(self, name: str, value: np.ndarray) -> int:
        value = np.array(value, order="C")  # np.ascontiguousarray would turn a scalar into shape (1,)
        s = schema()
        buf = s.BufferT()
        buf.data = np.frombuffer(value.tobytes(), np.uint8)
        self.model.buffers.append(buf)
        return self.tensor(name, list(value.shape), str(value.dtype), buffer=len(self.model.buffers) - 1)

    def op(self, op_type: str, inputs: list[int], outputs: list[int], **options) -> None:
        self.graph.operators.append(make_operator(self.model, op_type, inputs, outputs, **options))

    def unary(self, op_type: str, x: int, name: str, shape: list, dtype: str = "float32", **options) -> int:
        out = self.tensor(name, shape, dtype)
        self.op(op_type, [x], [out], **options)
        return out

    def binary(self, op_type: str, a: int, b: int, name: str, shape: list) -> int:
        out = self.tensor(name, shape)
        self.op(op_type, [a, b], [out], fusedActivationFunction=0)
        return out

    def set_io(self, inputs: list[int], outputs: list[int]) -> None:
        self.graph.inputs, self.graph.outputs = list(inputs), list(outputs)


def add_signature(model, subgraph: int = 0, key: str = SIGNATURE_KEY) -> None:
    """A signature naming each input and output of ``subgraph`` by its tensor name."""
    s = schema()
    graph = model.subgraphs[subgraph]

    def maps(indices):
        out = []
        for i in indices:
            m = s.TensorMapT()
            m.name, m.tensorIndex = _name(graph.tensors[i]), i
            out.append(m)
        return out

    sig = s.SignatureDefT()
    sig.signatureKey, sig.subgraphIndex = key, subgraph
    sig.inputs, sig.outputs = maps(graph.inputs), maps(graph.outputs)
    model.signatureDefs = [sig]


def _name(tensor) -> str:
    return tensor.name.decode() if isinstance(tensor.name, bytes) else tensor.name


def with_metadata(data: bytes, entries: dict[str, str]) -> bytes:
    """Embed ``name → text`` entries in the model's metadata (after quantization, which drops them)."""
    s = schema()
    model = from_bytes(data)
    model.metadata = [m for m in (model.metadata or []) if _name(m) not in entries]
    for name, text in entries.items():
        buf = s.BufferT()
        buf.data = np.frombuffer(text.encode("utf-8"), np.uint8)
        model.buffers.append(buf)
        meta = s.MetadataT()
        meta.name, meta.buffer = name, len(model.buffers) - 1
        model.metadata.append(meta)
    return to_bytes(model)


def read_metadata(data: bytes) -> dict[str, str]:
    """The model's metadata entries whose content is text."""
    model = from_bytes(data)
    out = {}
    for meta in model.metadata or []:
        raw = model.buffers[meta.buffer].data
        try:
            out[_name(meta)] = bytes(np.asarray(raw, np.uint8)).decode("utf-8") if raw is not None else ""
        except UnicodeDecodeError:
            continue
    return out
