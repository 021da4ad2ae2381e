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
        ort.set_default_logger_severity(3)  # errors only: no coloured warnings from the environment
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
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.version = ort.__version__

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self.output_names, self.session.run(None, feeds)))


def onnx_metadata(path: Path) -> dict[str, str]:
    """The metadata_props of an ONNX file, read through onnxruntime (no onnx package needed)."""
    backend = OnnxBackend(path)
    return dict(backend.session.get_modelmeta().custom_metadata_map)
