"""Any ONNX file, edgernn's or not: inputs fed by name, outputs returned by name, full precision.

``GraphModel`` opens a file with onnxruntime and knows its inputs and outputs (name, shape, element
type). ``read_feeds`` reads them from an ``.npz`` (one array per input name), or a single input from
``.npy``/``.csv``; each array is checked against the input's rank and fixed axes and cast to its type.
``write_outputs`` writes them to ``.npz`` (by name) or JSON lines (one object, every output by name).
Only numpy and onnxruntime are imported; the ``onnx`` package is not needed on a device.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from edgernn.bundle import atomic_write_bytes, atomic_write_text
from edgernn.data.checks import load_numpy, require_file
from edgernn.data.delimited import read_table
from edgernn.errors import BadInputError
from edgernn.runtime.backends import OnnxBackend

ORT_TYPES = {
    "tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(float16)": np.float16,
    "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(int16)": np.int16, "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8, "tensor(bool)": np.bool_,
}
FEED_EXTENSIONS = (".npz", ".npy", ".csv", ".tsv")


class GraphModel:
    """An ONNX file as its graph: ``run(feeds by name) -> outputs by name``."""

    def __init__(self, path: Path | str, threads: int | None = None, backend: OnnxBackend | None = None):
        self.path = Path(path)
        self.backend = backend or OnnxBackend(self.path, threads)
        session = self.backend.session
        self.inputs = [(i.name, list(i.shape), i.type) for i in session.get_inputs()]
        self.outputs = [(o.name, list(o.shape), o.type) for o in session.get_outputs()]
        self.metadata = dict(session.get_modelmeta().custom_metadata_map)

    @property
    def edgernn(self) -> bool:
        """Written by edgernn (its spec embedded): ``edgernn.runtime.load`` gives pre- and post-processing."""
        return "edgernn.spec" in self.metadata

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.backend.run(feeds)

    def read_feeds(self, path: Path | str) -> dict[str, np.ndarray]:
        """Arrays for every input, by name, from ``.npz`` (or ``.npy``/``.csv`` for a single input)."""
        return read_feeds(path, self.inputs)


def read_feeds(path: Path | str, inputs: list[tuple[str, list, str]]) -> dict[str, np.ndarray]:
    """Arrays for ``inputs`` (name, shape, onnxruntime type such as ``tensor(float)``), by name, from
    ``.npz`` (or ``.npy``/``.csv`` for a single input), checked against each input's rank and fixed axes."""
    p = require_file(path, extensions=FEED_EXTENSIONS)
    names = [n for n, _, _ in inputs]
    if p.suffix.lower() == ".npz":
        with load_numpy(p, str(path)) as archive:
            arrays = {k: archive[k] for k in archive.files}
        missing, unknown = [n for n in names if n not in arrays], sorted(set(arrays) - set(names))
        if missing or unknown:
            raise BadInputError(f"{path}: expected arrays named {', '.join(names)} (the model's inputs)"
                                + (f"; missing {', '.join(missing)}" if missing else "")
                                + (f"; unknown {', '.join(unknown)}" if unknown else ""))
    else:
        if len(names) != 1:
            raise BadInputError(f"{path}: the model has {len(names)} inputs ({', '.join(names)}); give them "
                                "by name in an .npz file")
        if p.suffix.lower() == ".npy":
            arrays = {names[0]: load_numpy(p, str(path))}
        else:
            arrays = {names[0]: read_table(p, str(path)).numbers()}
    return {name: _checked(name, shape, kind, arrays[name], str(path)) for name, shape, kind in inputs}


def _shape_text(shape: list) -> str:
    return "(" + ", ".join(str(d) if isinstance(d, int) and d > 0 else "?" for d in shape) + ")"


def _checked(name: str, shape: list, kind: str, array: np.ndarray, source: str) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim != len(shape):
        raise BadInputError(f"{source}: input '{name}' expects rank {len(shape)} {_shape_text(shape)}, "
                            f"got shape {tuple(array.shape)}")
    if any(isinstance(d, int) and d > 0 and array.shape[k] != d for k, d in enumerate(shape)):
        raise BadInputError(f"{source}: input '{name}' expects shape {_shape_text(shape)}, got {tuple(array.shape)}")
    dtype = ORT_TYPES.get(kind)
    if dtype is None:
        raise BadInputError(f"input '{name}' has type {kind}, which edgernn does not feed")
    if np.issubdtype(dtype, np.integer) and not np.issubdtype(array.dtype, np.integer):
        if not np.all(np.isfinite(array)) or np.any(array != np.round(array)):
            raise BadInputError(f"{source}: input '{name}' expects integers ({kind}), got other numbers")
    return np.ascontiguousarray(array.astype(dtype))


def draw_feeds(inputs: list[tuple[str, list, str]], seed: int = 0, unknown_axis: int = 4) -> dict[str, np.ndarray]:
    """Random feeds for float inputs (N(0, 1), unknown axes ``unknown_axis``); integer inputs are not guessed."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for name, shape, kind in inputs:
        dtype = ORT_TYPES.get(kind)
        if dtype is None or not np.issubdtype(dtype, np.floating):
            raise BadInputError(f"input '{name}' is {kind}: edgernn does not guess its values; give every input "
                                "by name with --input FILE.npz")
        dims = tuple(d if isinstance(d, int) and d > 0 else unknown_axis for d in shape)
        feeds[name] = rng.standard_normal(dims).astype(dtype)
    return feeds


def _rounded(a: np.ndarray, digits: int | None):
    values = a.astype(np.float64) if np.issubdtype(a.dtype, np.floating) else a
    if digits is not None and np.issubdtype(values.dtype, np.floating):
        values = np.round(values, digits)
    return values.tolist()


def outputs_json(outputs: dict[str, np.ndarray], digits: int | None = None) -> str:
    """One JSON object, every output by name as nested lists (float64 repr: every digit of float32)."""
    return json.dumps({name: _rounded(a, digits) for name, a in outputs.items()}) + "\n"


def write_outputs(outputs: dict[str, np.ndarray], path: Path, digits: int | None = None) -> None:
    """``.npz`` (arrays by name, as computed) or ``.jsonl``/``.json`` (``outputs_json``)."""
    suffix = Path(path).suffix.lower()
    if suffix == ".npz":
        buffer = io.BytesIO()
        np.savez(buffer, **{k: (np.round(v, digits) if digits is not None and np.issubdtype(v.dtype, np.floating)
                                else v) for k, v in outputs.items()})
        atomic_write_bytes(Path(path), buffer.getvalue())
    elif suffix in (".jsonl", ".json"):
        atomic_write_text(Path(path), outputs_json(outputs, digits))
    else:
        raise BadInputError(f"{path}: outputs of an ONNX file go to .npz (by name) or .jsonl; a .csv cannot hold "
                            "named tensors of any rank")
