"""Inference backends: one small class per runtime, each ``run(feeds) -> {name: array}``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgernn.errors import MissingDependencyError, ModelFileError


class OnnxBackend:
    """onnxruntime on the CPU."""

    name = "onnxruntime"

    def __init__(self, path: Path, threads: int | None = None):
        try:
            import onnxruntime as ort
        except ImportError:
            raise MissingDependencyError("onnxruntime", None, "running an ONNX model") from None
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types for unreadable models
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            first = first if len(first) <= 200 else first[:200] + "…"
            raise ModelFileError(f"{path}: onnxruntime {ort.__version__} cannot load this model ({first})") from None
        self.path = Path(path)
        try:  # names and metadata come back as text: a damaged file may hold bytes that are not UTF-8
            self.input_names = [i.name for i in self.session.get_inputs()]
            self.output_names = [o.name for o in self.session.get_outputs()]
            self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
            self.inputs = [{"name": i.name, "shape": list(i.shape), "type": i.type} for i in self.session.get_inputs()]
            self.outputs = [{"name": o.name, "shape": list(o.shape), "type": o.type} for o in self.session.get_outputs()]
        except UnicodeDecodeError:
            raise ModelFileError(f"{path}: damaged model, its names or metadata are not UTF-8 text") from None
        self.version = ort.__version__

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            return dict(zip(self.output_names, self.session.run(None, feeds)))
        except Exception as e:  # onnxruntime's own types (Fail, InvalidArgument, …): the model cannot run these feeds
            first = " ".join(str(e).split())
            first = first if len(first) <= 240 else first[:240] + "…"
            raise ModelFileError(f"{self.path.name}: onnxruntime could not run this model ({first})") from None


def onnx_metadata(path: Path) -> dict[str, str]:
    """The metadata_props of an ONNX file, read through onnxruntime (no onnx package needed)."""
    return OnnxBackend(path).metadata
