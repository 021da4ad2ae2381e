"""Pre- and post-processing shared by whole windows (``model``) and streams (``stream``): input
checks, the forecast transform and normalisation on the way in; the head's output checked,
de-normalised (or turned into class probabilities) and returned as a ``Prediction`` on the way out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from edgernn.errors import BadInputError, ModelFileError
from edgernn.spec import ModelSpec
from edgernn.transforms import WindowContext, invert_outputs, transform_inputs


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


def check_outputs(spec: ModelSpec, y: np.ndarray, n: int, where: str) -> np.ndarray:
    """The head's output must be (N, O) (or (N, T, O) for a head on every step) as the spec says."""
    ok = y.ndim in (2, 3) and y.shape[0] == n and (spec.head is None or y.shape[-1] == spec.output_size)
    if not ok or not np.issubdtype(y.dtype, np.number):
        raise ModelFileError(f"{where}: the model answered shape {tuple(y.shape)} of type {y.dtype} for {n} "
                             f"window(s), not ({n}, {spec.output_size}) as its spec says; export it again")
    return y


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
