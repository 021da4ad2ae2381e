"""A loaded model: a bundle variant or a bare .onnx file, with pre- and post-processing.

``load()`` checks the file against the manifest's sha256, opens it with a backend, and returns a
``Model`` whose ``predict()`` takes windows in the data's own units and returns de-normalised
values, or class labels with probabilities.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgernn.bundle import Manifest, Variant, check_file, missing_bundle, read_manifest
from edgernn.errors import BadInputError, ModelFileError
from edgernn.runtime.backends import OnnxBackend
from edgernn.spec import ModelSpec
from edgernn.runtime.processing import (  # noqa: F401  (re-exported: the old import path)
    Prediction, active_transform, by_length, check_ids, check_lengths, check_outputs, check_windows, finish_outputs,
    normalize_input, pad_sequences, postprocess, prepare_windows, softmax,
)
from edgernn.runtime.stream import SlidingWindowSession, StreamSession
from edgernn.runtime.tflite_backend import TfliteBackend, tflite_metadata

DEFAULT_VARIANT = "onnx-window-fp32"
CHUNK = 256  # windows per backend call: bounds memory on large inputs


class Model:
    """A loaded model: ``predict`` windows; ``stream`` (state carried) or ``sliding`` (last T frames)
    one frame at a time. ``spec`` describes the model, ``variant`` the file that runs."""

    def __init__(self, spec: ModelSpec, variant: Variant, path: Path, backend, manifest: Manifest | None,
                 threads: int | None = None):
        self.spec, self.variant, self.path, self.backend, self.manifest = spec, variant, path, backend, manifest
        self.threads = threads
        self.backend_choice = "auto"

    def window(self, x_normalized: np.ndarray, lengths: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Run the window graph on normalised input ``(B, T, F)`` (or token ids ``(B, T)``), with each
        window's real length when the graph takes ``lengths`` (default: all of it): the raw outputs."""
        if self.variant.graph != "window":
            raise BadInputError(f"variant {self.variant.name} is a {self.variant.graph} graph; pick a window variant")
        x = np.ascontiguousarray(x_normalized, np.int64 if self.spec.vocab_size else np.float32)
        expected = self.variant.inputs[0].shape if self.variant.inputs and self.variant.format == "onnx" else ()
        if len(expected) == x.ndim and any(isinstance(e, int) and e != n for e, n in zip(expected, x.shape)):
            shape = ", ".join(str(e) for e in expected)  # fixed axes, e.g. a length a module's trace fixed
            raise BadInputError(f"expected input of shape ({shape}), got {tuple(x.shape)}")
        feeds = {"x": x}
        if "lengths" in getattr(self.backend, "input_names", ()):
            feeds["lengths"] = np.full(x.shape[0], x.shape[1], np.int64) if lengths is None else lengths
        elif lengths is not None:
            raise BadInputError("this model takes no lengths: it was exported from a module without them")
        return self.backend.run(feeds)

    def stream(self, batch: int = 1):
        """A StreamSession on this model's step graph (the bundle's step variant of the same precision)."""
        t = active_transform(self.spec)
        if t is not None:
            raise BadInputError(f"this model forecasts through a per-window transform ({t.describe()}), which needs "
                                "whole windows: it cannot stream frame by frame; run it on windows (--input)")
        if self.variant.graph == "step":
            return StreamSession(self.spec, self.backend, batch)
        if self.manifest is None:
            raise BadInputError(f"{self.path}: a window graph cannot stream; use the bundle or its .step.onnx file")
        if not self.manifest.streaming.get("supported"):
            raise BadInputError(f"this model cannot stream: {self.manifest.streaming.get('reason', 'no step graph')}")
        name = self.variant.name.replace("-window-", "-step-")
        step = self.manifest.variant(name)
        file = check_file(self.path.parent, step)
        return StreamSession(self.spec, open_backend(file, step.format, self.threads, self.backend_choice), batch)

    def sliding(self, window: int | None = None, hop: int = 1):
        """A SlidingWindowSession: one frame at a time, each answer as ``predict`` on the last ``window``
        frames (default: the training window), every ``hop`` frames. What ``run --stream`` does for a
        model trained on windows; ``stream()`` carries the state instead."""
        window = window or self.spec.window
        if not window:
            raise BadInputError("this model records no training window: give sliding(window=N)")
        slots = -(-window // hop) if window >= 1 and hop >= 1 else 1  # bad values: refused by the session
        return SlidingWindowSession(self.stream(batch=slots), window, hop)

    def predict(self, x, lengths: np.ndarray | None = None) -> Prediction:
        """Windows ``(N, T, F)`` in data units (or token ids ``(N, T)``); ``lengths`` (N,) for windows padded at
        the end; or a list of ``(T_i, F)`` sequences of their own lengths. Each sequence's answer is the one it
        gets alone, unpadded."""
        if isinstance(x, (list, tuple)):
            if lengths is not None:
                raise BadInputError("give either a list of sequences or padded windows with lengths, not both")
            x, lengths = pad_sequences(x, self.spec)
        x, ctx = prepare_windows(self.spec, x)
        lengths = None if lengths is None else check_lengths(lengths, x)
        y = check_outputs(self.spec, self.raw_outputs(x, lengths), len(x), self.path.name)
        return finish_outputs(self.spec, y, ctx)

    def raw_outputs(self, x_normalized: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
        """The head's raw output ``y`` for normalised windows, in chunks; with ``lengths``, each window at its
        true length: through the graph's ``lengths`` input when it has one, else by running the windows of
        each length together, cut to that length."""
        takes_lengths = "lengths" in getattr(self.backend, "input_names", ())
        if lengths is None or takes_lengths:
            return np.concatenate([self._y(self.window(x_normalized[i : i + CHUNK],
                                                       None if lengths is None else lengths[i : i + CHUNK]))
                                   for i in range(0, len(x_normalized), CHUNK)])
        return by_length(self.raw_outputs, x_normalized, lengths)

    def _y(self, out: dict[str, np.ndarray]) -> np.ndarray:
        if "y" not in out:
            raise ModelFileError(f"{self.path.name}: this window graph has no output y (it has "
                                 f"{', '.join(out) or 'none'}); it is not a graph edgernn wrote: export it again")
        return out["y"]


def _bare_variant(path: Path, graph: str) -> Variant:
    return Variant(name=f"onnx-{graph}-file", file=path.name, format="onnx", graph=graph, precision="unknown",
                   size=path.stat().st_size, sha256="", inputs=(), outputs=())


def open_backend(path: Path, format: str, threads: int | None, backend: str = "auto"):
    """The backend for a model file: onnxruntime for .onnx; for .tflite the LiteRT interpreter
    (``ai-edge-litert``) or ``tflite-runtime`` — the first installed, or the one named."""
    if format == "tflite":
        return TfliteBackend(path, threads, runtime=backend if backend != "onnxruntime" else "auto")
    if backend not in ("auto", "onnxruntime"):
        raise BadInputError(f"{path.name} is an ONNX model: it runs on onnxruntime, not {backend}")
    return OnnxBackend(path, threads)


def load(path: Path | str, *, variant: str | None = None, threads: int | None = None, backend: str = "auto") -> Model:
    """Open a bundle folder (a variant of it, by name) or a bare ``.onnx``/``.tflite`` file written by edgernn.

    ``backend``: "auto", "onnxruntime", or for TFLite variants "ai-edge-litert" / "tflite-runtime".
    """
    path = Path(path)
    if path.is_dir():
        manifest = read_manifest(path)
        chosen = manifest.variant(variant or DEFAULT_VARIANT)
        file = check_file(path, chosen)
        model = Model(manifest.spec, chosen, file, open_backend(file, chosen.format, threads, backend), manifest,
                      threads)
        model.backend_choice = backend
        return model
    if not path.exists():
        raise missing_bundle(path)
    if path.suffix == ".tflite":
        return _load_bare_tflite(path, threads, backend)
    if path.suffix != ".onnx":
        raise ModelFileError(f"{path}: not a model (expected a bundle folder, or a .onnx or .tflite file)")
    backend = open_backend(path, "onnx", threads, backend)
    meta = backend.metadata
    if "edgernn.spec" not in meta:
        raise ModelFileError(f"{path}: an ONNX model without edgernn metadata: open it with "
                             "edgernn.runtime.graph.GraphModel (inputs and outputs by name), as `edgernn run` does")
    spec = ModelSpec.from_json(meta["edgernn.spec"])
    return Model(spec, _bare_variant(path, meta.get("edgernn.graph", "window")), path, backend, None, threads)


def _load_bare_tflite(path: Path, threads: int | None, backend: str) -> Model:
    meta = tflite_metadata(path.read_bytes())
    if "edgernn.spec" not in meta:
        raise ModelFileError(f"{path}: a TFLite model without edgernn metadata; export it with `edgernn export`")
    spec = ModelSpec.from_json(meta["edgernn.spec"])
    graph = meta.get("edgernn.graph", "window")
    variant = Variant(name=f"tflite-{graph}-file", file=path.name, format="tflite", graph=graph,
                      precision=meta.get("edgernn.precision", "unknown"), size=path.stat().st_size, sha256="",
                      inputs=(), outputs=())
    return Model(spec, variant, path, open_backend(path, "tflite", threads, backend), None, threads)
