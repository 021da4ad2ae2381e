"""Streaming: one frame at a time through the step graph, carrying the state between calls."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from edgernn.errors import BadInputError, ModelFileError
from edgernn.runtime.bound_steps import BoundSteps
from edgernn.runtime.model import Prediction, check_outputs, postprocess
from edgernn.spec import ModelSpec


class StreamSession:
    """``B`` independent streams (e.g. several sensors) advanced together, one frame each per step.

    >>> session = model.stream(batch=1)
    >>> session.step([0.1, 0.4, ...])     # one frame of F features, in data units
    """

    def __init__(self, spec: ModelSpec, backend, batch: int = 1):
        self.spec, self.backend, self.batch = spec, backend, batch
        norm = spec.normalization
        self._mean = np.asarray(norm.x_mean, np.float32) if norm and norm.x_mean else None
        self._std = np.asarray(norm.x_std, np.float32) if norm and norm.x_std else None
        self._state_names = ("h_in", "c_in") if spec.has_cell_state else ("h_in",)
        L, B = spec.num_layers, batch
        sizes = {"h_in": spec.state_size, "c_in": spec.hidden_size}  # h is projected when proj_size > 0
        self._shapes = {name: (L, B, sizes[name]) for name in self._state_names}
        self._shapes["x_t"] = (B,) if spec.vocab_size else (B, spec.input_size)
        session = getattr(backend, "session", None)  # onnxruntime: buffers bound once (runtime.bound_steps)
        self._bound = self._bind(session) if session is not None else None
        self.reset()

    @property
    def state(self) -> dict[str, np.ndarray]:
        """The state the next step reads, by input name."""
        return self._bound.state if self._bound is not None else self._state

    def reset(self, stream: int | None = None) -> None:
        """Zero the state of every stream, or of one."""
        if self._bound is not None:
            self._bound.zero(stream)
        elif stream is None:
            self._state = {name: np.zeros(self._shapes[name], np.float32) for name in self._state_names}
        else:
            for s in self._state.values():
                s[:, stream] = 0.0
        if stream is None:
            self.steps = 0

    def step_raw(self, x_t: np.ndarray) -> np.ndarray:
        """Advance with a normalised frame ``(B, F)``; return the raw head output ``(B, O)``."""
        if self._bound is not None:
            if getattr(x_t, "shape", None) != self._shapes["x_t"]:
                raise BadInputError(f"expected a frame of shape {self._shapes['x_t']}, got {tuple(np.shape(x_t))}")
            y = self._bound.step(x_t)["y"].copy()  # the buffer is rewritten by the next step
        else:
            out = self.backend.run({"x_t": x_t, **self._state})
            self._check_names(out)
            self._state = {name: out[name.replace("_in", "_out")] for name in self._state_names}
            y = out["y"]
        self.steps += 1
        return check_outputs(self.spec, y, x_t.shape[0], "step graph")

    def _check_names(self, outputs) -> None:
        missing = [n for n in ("y", *(s.replace("_in", "_out") for s in self._state_names)) if n not in outputs]
        if missing:
            raise ModelFileError(f"this step graph has no output {', '.join(missing)}; it is not a step graph "
                                 "edgernn wrote: export the bundle again")

    def _bind(self, session):
        """onnxruntime's buffers bound once; a graph that is not edgernn's step graph is one line."""
        self._check_names([o.name for o in session.get_outputs()])
        try:
            return BoundSteps(session, self._state_names, self._shapes)
        except Exception as e:  # onnxruntime's own types: the graph cannot run a zero step of this shape
            first = " ".join(str(e).split())[:240]
            raise ModelFileError(f"step graph: onnxruntime could not run it ({first}); export the bundle again") from None

    def step(self, frame) -> Prediction:
        """Advance with one frame per stream, ``(F,)`` or ``(B, F)`` in data units (a token id per stream
        for a model with an Embedding in front)."""
        if self.spec.vocab_size:
            ids = np.asarray(frame).reshape(-1)
            if ids.shape != (self.batch,) or not np.issubdtype(ids.dtype, np.integer) \
                    or ids.min() < 0 or ids.max() >= self.spec.vocab_size:
                raise BadInputError(f"expected {self.batch} token id(s) in 0..{self.spec.vocab_size - 1}, got {frame!r}")
            return postprocess(self.spec, self.step_raw(ids.astype(np.int64)))
        x = np.asarray(frame, np.float32)
        if x.ndim == 1:
            x = x[None, :]
        F = self.spec.input_size
        if x.shape != (self.batch, F):
            raise BadInputError(f"expected a frame of shape ({self.batch}, {F}), got {tuple(np.shape(frame))}")
        if not np.isfinite(x).all():
            raise BadInputError("frame has NaN or infinite values")
        if self._mean is not None:
            x = (x - self._mean) / self._std
        return postprocess(self.spec, self.step_raw(np.ascontiguousarray(x, np.float32)))


def step_fn(backend):
    """The step graph as a function for parity checks: ``(x_t, state) → outputs``."""

    def run(x_t: np.ndarray, state: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return backend.run({"x_t": x_t, **state})

    return run
