"""The TFLite backend: the LiteRT interpreter (``ai-edge-litert``), else ``tflite-runtime``.

Same interface as ``OnnxBackend``: ``run(feeds) -> {name: array}`` by tensor name. Inputs are
resized when a feed's shape differs from the last one (dynamic batch, and time for window
graphs); int8 inputs and outputs, if a file has them, are quantized and dequantized with the
tensor's own scale and zero point, so callers always deal in float32. Imports neither torch nor
tensorflow.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from edgernn.errors import BadInputError, MissingDependencyError, ModelFileError

RUNTIMES = ("ai-edge-litert", "tflite-runtime")


def interpreter_class(runtime: str = "auto"):
    """``(Interpreter, runtime name, version)``: ai-edge-litert first, then tflite-runtime."""
    if runtime not in ("auto", *RUNTIMES):
        raise BadInputError(f"TFLite runtime must be auto or one of {', '.join(RUNTIMES)}, got {runtime!r}")
    if runtime in ("auto", "ai-edge-litert"):
        try:
            import ai_edge_litert
            from ai_edge_litert.interpreter import Interpreter

            return Interpreter, "ai-edge-litert", getattr(ai_edge_litert, "__version__", "unknown")
        except ImportError:
            if runtime != "auto":
                raise MissingDependencyError("ai-edge-litert", "litert", "running a TFLite model") from None
    try:
        import tflite_runtime
        from tflite_runtime.interpreter import Interpreter

        return Interpreter, "tflite-runtime", getattr(tflite_runtime, "__version__", "unknown")
    except ImportError:
        wanted = "tflite-runtime" if runtime == "tflite-runtime" else "ai-edge-litert (or tflite-runtime)"
        fix = "pip install tflite-runtime 'numpy<2'" if runtime == "tflite-runtime" \
            else "pip install 'edgernn[litert]' (just ai-edge-litert)"
        raise MissingDependencyError(wanted, "litert", "running a TFLite model", fix) from None


# Printed by LiteRT's C++ code straight to file descriptor 2 when a graph is first allocated;
# TF_CPP_MIN_LOG_LEVEL does not stop it. Noise for a user: filtered out, everything else passes.
XNNPACK_NOTICE = "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."


@contextlib.contextmanager
def native_stderr_without_notices():
    """Run a block with file descriptor 2 captured; afterwards write what native code printed there
    back to ``sys.stderr``, less the XNNPACK notice. Errors and warnings still reach the user."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no usable fd 2 (embedded, closed): leave it alone
        yield
        return
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode("utf-8", "replace")
            rest = [line for line in text.splitlines(keepends=True) if line.strip() != XNNPACK_NOTICE]
            if rest:
                sys.stderr.write("".join(rest))
                sys.stderr.flush()


def load_interpreter(model_path: Path | str | None = None, model_content: bytes | None = None,
                     threads: int | None = None, runtime: str = "auto"):
    Interpreter, _, _ = interpreter_class(runtime)
    where = model_path or "model bytes"
    try:
        with native_stderr_without_notices():
            interpreter = Interpreter(model_path=None if model_path is None else str(model_path),
                                      model_content=model_content, num_threads=threads)
            interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelFileError(f"{where}: the TFLite interpreter cannot load this model ({first})") from None
    return interpreter


class TfliteBackend:
    """One TFLite model file on the CPU."""

    def __init__(self, path: Path | str | None, threads: int | None = None, *, runtime: str = "auto",
                 model_content: bytes | None = None):
        _, self.name, self.version = interpreter_class(runtime)
        self.path = path
        self._source = (path, model_content, threads, runtime)
        self.interpreter = load_interpreter(path, model_content, threads, runtime)
        self._inputs = {d["name"]: d for d in self.interpreter.get_input_details()}
        self._outputs = self.interpreter.get_output_details()
        self.input_names = list(self._inputs)
        self.output_names = [d["name"] for d in self._outputs]

    @classmethod
    def from_bytes(cls, data: bytes, threads: int | None = None, *, runtime: str = "auto") -> TfliteBackend:
        return cls(None, threads, runtime=runtime, model_content=bytes(data))

    def _resize(self, feeds: dict[str, np.ndarray]) -> None:
        shapes = {name: tuple(np.shape(feeds[name])) for name in self._inputs}
        if all(shapes[name] == tuple(d["shape"]) for name, d in self._inputs.items()):
            return
        try:
            self._resize_to(shapes)
        except RuntimeError:
            # tflite-runtime 2.14 sometimes fails to re-allocate a WHILE graph resized from one batch
            # size to another (seen on x86_64 and aarch64); a fresh interpreter resized once works.
            self.interpreter = load_interpreter(*self._source)
            self._resize_to(shapes)

    def _resize_to(self, shapes: dict[str, tuple[int, ...]]) -> None:
        for name, detail in {d["name"]: d for d in self.interpreter.get_input_details()}.items():
            self.interpreter.resize_tensor_input(detail["index"], list(shapes[name]), strict=False)
        with native_stderr_without_notices():
            self.interpreter.allocate_tensors()
        self._inputs = {d["name"]: d for d in self.interpreter.get_input_details()}
        self._outputs = self.interpreter.get_output_details()

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        missing = [n for n in self.input_names if n not in feeds]
        if missing:
            raise BadInputError(f"expected inputs {', '.join(self.input_names)}, got {', '.join(feeds) or 'none'}")
        self._resize(feeds)
        for name, detail in self._inputs.items():
            self.interpreter.set_tensor(detail["index"], _to_input(np.asarray(feeds[name], np.float32), detail))
        self.interpreter.invoke()
        return {d["name"]: _from_output(self.interpreter.get_tensor(d["index"]), d) for d in self._outputs}


def _to_input(x: np.ndarray, detail: dict) -> np.ndarray:
    dtype = np.dtype(detail["dtype"])
    if dtype == np.float32:
        return np.ascontiguousarray(x)
    scale, zero = detail["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale) + zero, info.min, info.max).astype(dtype)


def _from_output(y: np.ndarray, detail: dict) -> np.ndarray:
    if np.dtype(detail["dtype"]) == np.float32:
        return np.array(y)  # a copy: the interpreter reuses its buffers
    scale, zero = detail["quantization"]
    return (y.astype(np.float32) - zero) * np.float32(scale)


# --------------------------------------------------------------------------------------------
# Model metadata without the schema package (tflite-runtime ships none): a few flatbuffer reads.
# Model table fields: 4 = buffers, 6 = metadata; Metadata: 0 = name, 1 = buffer; Buffer: 0 = data.
# --------------------------------------------------------------------------------------------


def _u32(b: bytes, at: int) -> int:
    return int.from_bytes(b[at : at + 4], "little")


def _field(b: bytes, table: int, index: int) -> int | None:
    """Absolute position of a table's field, or None when it is absent."""
    vtable = table - int.from_bytes(b[table : table + 4], "little", signed=True)
    if 4 + 2 * index >= int.from_bytes(b[vtable : vtable + 2], "little"):
        return None
    offset = int.from_bytes(b[vtable + 4 + 2 * index : vtable + 6 + 2 * index], "little")
    return table + offset if offset else None


def _vector(b: bytes, at: int) -> tuple[int, int]:
    """(start of the elements, count) of the vector referenced at ``at``."""
    start = at + _u32(b, at)
    return start + 4, _u32(b, start)


def tflite_metadata(data: bytes) -> dict[str, str]:
    """The text entries of a .tflite file's metadata (``edgernn.spec``, ``edgernn.graph``, …)."""
    try:
        root = _u32(data, 0)
        meta_at, buffers_at = _field(data, root, 6), _field(data, root, 4)
        if meta_at is None or buffers_at is None:
            return {}
        buffers, n_buffers = _vector(data, buffers_at)
        entries, count = _vector(data, meta_at)
        out = {}
        for k in range(count):
            table = entries + 4 * k + _u32(data, entries + 4 * k)
            name_at, buffer_at = _field(data, table, 0), _field(data, table, 1)
            if name_at is None or buffer_at is None or _u32(data, buffer_at) >= n_buffers:
                continue
            name_start, name_len = _vector(data, name_at)
            slot = buffers + 4 * _u32(data, buffer_at)
            buffer = slot + _u32(data, slot)
            data_at = _field(data, buffer, 0)
            if data_at is None:
                continue
            start, length = _vector(data, data_at)
            out[data[name_start : name_start + name_len].decode("utf-8")] = data[start : start + length].decode("utf-8")
        return out
    except (IndexError, UnicodeDecodeError, ValueError):
        return {}
