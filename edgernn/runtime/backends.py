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
        options.log_severity_level = 4  # its own log lines repeat the exception, which is turned into one line
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types for unreadable models
            raise ModelFileError(f"{path}: {load_failure(str(e), ort.__version__)}") from None
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


def load_failure(message: str, version: str) -> str:
    """onnxruntime's multi-line load error as one line that keeps its cause."""
    text = " ".join(message.split())
    if "layout == 1" in text or "layout_ == 0" in text:
        op = next((name for key, name in (("lstm", "LSTM"), ("gru", "GRU"), ("rnn", "RNN")) if key in text.lower()), "RNN")
        return (f"onnxruntime {version} cannot run this model: its {op} node has layout=1 (batch-first), which "
                "onnxruntime does not implement (only layout=0); `edgernn validate` checks the node by running it "
                "as layout=0 between Transposes")
    text = text.split("Exception during initialization: ")[-1]
    text = text if len(text) <= 300 else text[:300] + "…"
    return f"onnxruntime {version} cannot load this model ({text})"


def onnx_metadata(path: Path) -> dict[str, str]:
    """The metadata_props of an ONNX file, read through onnxruntime (no onnx package needed)."""
    return OnnxBackend(path).metadata
