"""A loaded model: a bundle variant or a bare .onnx file, with pre- and post-processing.

``load()`` checks the file against the manifest's sha256, opens it with a backend, and returns a
``Model`` whose ``predict()`` takes windows in the data's own units and returns de-normalised
values, or class labels with probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgernn.bundle import Manifest, Variant, check_file, missing_bundle, read_manifest
from edgernn.errors import BadInputError, ModelFileError
from edgernn.runtime.backends import OnnxBackend
from edgernn.spec import ModelSpec
from edgernn.transforms import WindowContext, invert_outputs, transform_inputs

DEFAULT_VARIANT = "onnx-window-fp32"
CHUNK = 256  # windows per backend call: bounds memory on large inputs


@dataclass
class Prediction:
    head: str
    values: np.ndarray  # regression/forecast: (N, O) in data units; classification: (N, K) probabilities
    labels: tuple[str, ...] = ()

    @property
    def classes(self) -> np.ndarray:
        return self.values.argmax(axis=-1)

    def records(self, digits: int | None = None) -> list[dict[str, Any]]:
        """One record per window, in full float64 precision; ``digits`` rounds every value to that many decimals."""
        r = (lambda v: float(v)) if digits is None else (lambda v: round(float(v), digits))  # noqa: E731
        if self.values.ndim > 2:  # a head on every step: one row of values per step
            return [{"prediction": [[r(v) for v in step] for step in row]} for row in self.values]
        if self.head != "classification":
            return [{"prediction": [r(v) for v in row]} for row in self.values]
        names = self.labels or tuple(str(k) for k in range(self.values.shape[1]))
        return [
            {"label": names[k], "class": int(k), "probabilities": {n: r(p) for n, p in zip(names, row)}}
            for k, row in zip(self.classes, self.values)
        ]


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def postprocess(spec: ModelSpec, y: np.ndarray) -> Prediction:
    """Raw head output (normalised units or logits) → a Prediction in the data's terms."""
    if spec.head == "classification":
        return Prediction(spec.head, softmax(y.astype(np.float64)), spec.labels)
    values = y.astype(np.float64)
    norm = spec.normalization
    if norm is not None and norm.y_mean:
        values = values * np.asarray(norm.y_std) + np.asarray(norm.y_mean)
    return Prediction(spec.head, values)


def check_ids(x: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """Token ids ``(N, T)`` for a model with an Embedding in front: integers, never normalised."""
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise BadInputError(f"expected token ids of shape (N, T), got {tuple(x.shape)}")
    if not np.issubdtype(x.dtype, np.integer):
        if not np.issubdtype(x.dtype, np.number) or not np.all(np.isfinite(x)) or np.any(x != np.round(x)):
            raise BadInputError(f"expected integer token ids, got values of type {x.dtype}")
    if x.min() < 0 or x.max() >= spec.vocab_size:
        raise BadInputError(f"expected token ids in 0..{spec.vocab_size - 1}, got ids from {x.min()} to {x.max()}")
    return x.astype(np.int64)


def check_lengths(lengths, x: np.ndarray) -> np.ndarray:
    """Each window's real length, for padded batches: ``(N,)`` integers in 1..T."""
    n, t = x.shape[:2]
    lengths = np.asarray(lengths)
    if lengths.shape != (n,) or not np.issubdtype(lengths.dtype, np.integer):
        raise BadInputError(f"expected lengths as {n} integers (one per window), got shape {lengths.shape} "
                            f"of type {lengths.dtype}")
    if lengths.min() < 1 or lengths.max() > t:
        raise BadInputError(f"expected lengths in 1..{t} (the padded length), got {lengths.min()}..{lengths.max()}")
    return lengths.astype(np.int64)


def pad_sequences(sequences, spec: ModelSpec) -> tuple[np.ndarray, np.ndarray]:
    """A list of ``(T_i, F)`` sequences (``(T_i,)`` for one feature) → windows padded at the end, and lengths."""
    arrays = []
    for i, seq in enumerate(sequences):
        a = np.asarray(seq)
        if a.ndim == 1 and spec.input_size == 1:
            a = a[:, None]  # (T_i, 1)
        if a.ndim != 2 or a.shape[1] != spec.input_size or a.shape[0] == 0:
            raise BadInputError(f"expected sequence {i} of shape (T, {spec.input_size}), got {a.shape}")
        arrays.append(a)
    if not arrays:
        raise BadInputError("expected at least one sequence, got an empty list")
    lengths = np.array([len(a) for a in arrays], np.int64)
    x = np.zeros((len(arrays), int(lengths.max()), spec.input_size), np.float64)  # (N, T, F)
    for i, a in enumerate(arrays):
        x[i, : len(a)] = a
    return x, lengths


def check_windows(x: np.ndarray, spec: ModelSpec) -> np.ndarray:
    if spec.vocab_size:
        return check_ids(x, spec)
    x = np.asarray(x)
    F = spec.input_size
    if x.ndim != 3 or x.shape[2] != F:
        raise BadInputError(f"expected input of shape (N, T, {F}), got {tuple(x.shape)}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise BadInputError(f"expected at least one window of at least one step, got shape {tuple(x.shape)}")
    if not np.issubdtype(x.dtype, np.number):
        raise BadInputError(f"expected numbers, got values of type {x.dtype}")
    bad = ~np.isfinite(x)
    if bad.any():
        n, t, f = (int(i) for i in np.argwhere(bad)[0])
        raise BadInputError(f"input has NaN or infinite values ({int(bad.sum())} in all; first at window {n}, step {t}, feature {f})")
    return x.astype(np.float32)


def active_transform(spec: ModelSpec):
    t = spec.forecast_transform
    return t if t is not None and t.active else None


def prepare_windows(spec: ModelSpec, x: np.ndarray) -> tuple[np.ndarray, WindowContext | None]:
    """Checked windows in data units → what the graph takes (forecast transform, then normalisation), and
    the per-window context that ``finish_outputs`` needs to return forecasts in data units."""
    x = check_windows(x, spec)
    t = active_transform(spec)
    if t is None:
        return normalize_input(spec, x), None
    x_t, ctx = transform_inputs(t, x, spec.output_size)
    return normalize_input(spec, x_t), ctx


def finish_outputs(spec: ModelSpec, y: np.ndarray, ctx: WindowContext | None) -> Prediction:
    """Raw graph outputs → a Prediction in data units (normalisation, then the forecast transform, undone)."""
    prediction = postprocess(spec, y)
    if ctx is not None:
        prediction.values = invert_outputs(spec.forecast_transform, prediction.values, ctx)
    return prediction


def normalize_input(spec: ModelSpec, x: np.ndarray) -> np.ndarray:
    norm = spec.normalization
    if spec.vocab_size:
        return x  # token ids are never normalised
    if norm is None or not norm.x_mean:
        return x.astype(np.float32)
    return ((x - np.asarray(norm.x_mean, np.float32)) / np.asarray(norm.x_std, np.float32)).astype(np.float32)


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
        from edgernn.runtime.stream import StreamSession

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
        from edgernn.runtime.stream import SlidingWindowSession

        window = window or self.spec.window
        if not window:
            raise BadInputError("this model records no training window: give sliding(window=N)")
        return SlidingWindowSession(self.stream(batch=1), window, hop)

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


def by_length(raw_outputs, x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """``raw_outputs(x)`` for padded windows of several true lengths: the windows of each length run
    together, cut to that length, so each answer is the one its sequence gets alone, unpadded."""
    out = None
    for length in np.unique(lengths):
        index = np.flatnonzero(lengths == length)
        y = raw_outputs(x[index, : int(length)])
        if out is None:
            out = np.zeros((len(x),) + y.shape[1:], y.dtype)
        out[index] = y
    return out


def check_outputs(spec: ModelSpec, y: np.ndarray, n: int, where: str) -> np.ndarray:
    """The head's output must be (N, O) (or (N, T, O) for a head on every step) as the spec says."""
    ok = y.ndim in (2, 3) and y.shape[0] == n and (spec.head is None or y.shape[-1] == spec.output_size)
    if not ok or not np.issubdtype(y.dtype, np.number):
        raise ModelFileError(f"{where}: the model answered shape {tuple(y.shape)} of type {y.dtype} for {n} "
                             f"window(s), not ({n}, {spec.output_size}) as its spec says; export it again")
    return y


def _bare_variant(path: Path, graph: str) -> Variant:
    return Variant(name=f"onnx-{graph}-file", file=path.name, format="onnx", graph=graph, precision="unknown",
                   size=path.stat().st_size, sha256="", inputs=(), outputs=())


def open_backend(path: Path, format: str, threads: int | None, backend: str = "auto"):
    """The backend for a model file: onnxruntime for .onnx; for .tflite the LiteRT interpreter
    (``ai-edge-litert``) or ``tflite-runtime`` — the first installed, or the one named."""
    if format == "tflite":
        from edgernn.runtime.tflite_backend import TfliteBackend

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
    from edgernn.runtime.tflite_backend import tflite_metadata

    meta = tflite_metadata(path.read_bytes())
    if "edgernn.spec" not in meta:
        raise ModelFileError(f"{path}: a TFLite model without edgernn metadata; export it with `edgernn export`")
    spec = ModelSpec.from_json(meta["edgernn.spec"])
    graph = meta.get("edgernn.graph", "window")
    variant = Variant(name=f"tflite-{graph}-file", file=path.name, format="tflite", graph=graph,
                      precision=meta.get("edgernn.precision", "unknown"), size=path.stat().st_size, sha256="",
                      inputs=(), outputs=())
    return Model(spec, variant, path, open_backend(path, "tflite", threads, backend), None, threads)
