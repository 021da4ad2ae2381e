"""Streaming: one frame at a time through the step graph, carrying the state between calls."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from edgernn.errors import BadInputError, ModelFileError
from edgernn.runtime.bound_steps import BoundSteps
from edgernn.runtime.processing import Prediction, check_outputs, postprocess
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
            y = self._bound.step(x_t)["y"].copy()  # the buffer is rewritten by the next step (checked at bind)
        else:
            out = self.backend.run({"x_t": x_t, **self._state})
            self._check_names(out)
            self._state = {name: out[name.replace("_in", "_out")] for name in self._state_names}
            y = check_outputs(self.spec, out["y"], x_t.shape[0], "step graph")
        self.steps += 1
        return y

    def _check_names(self, outputs) -> None:
        missing = [n for n in ("y", *(s.replace("_in", "_out") for s in self._state_names)) if n not in outputs]
        if missing:
            raise ModelFileError(f"this step graph has no output {', '.join(missing)}; it is not a step graph "
                                 "edgernn wrote: export the bundle again")

    def _bind(self, session):
        """onnxruntime's buffers bound once; a graph that is not edgernn's step graph is one line."""
        self._check_names([o.name for o in session.get_outputs()])
        try:
            bound = BoundSteps(session, self._state_names, self._shapes)
        except Exception as e:  # onnxruntime's own types: the graph cannot run a zero step of this shape
            first = " ".join(str(e).split())[:240]
            raise ModelFileError(f"step graph: onnxruntime could not run it ({first}); export the bundle again") from None
        # the output buffer has the shape of every later step: its shape is checked here, once
        check_outputs(self.spec, bound.outputs["y"], self.batch, "step graph")
        return bound

    def step(self, frame) -> Prediction:
        """Advance with one frame per stream, ``(F,)`` or ``(B, F)`` in data units (a token id per stream
        for a model with an Embedding in front)."""
        return postprocess(self.spec, self.step_raw(self.prepare(frame, self.batch)))

    def prepare(self, frame, batch: int) -> np.ndarray:
        """Check ``batch`` frames in data units and normalise them: ``(B, F)`` float32 (or ``(B,)`` token ids)."""
        if self.spec.vocab_size:
            ids = np.asarray(frame).reshape(-1)
            if ids.shape != (batch,) or not np.issubdtype(ids.dtype, np.integer) \
                    or ids.min() < 0 or ids.max() >= self.spec.vocab_size:
                raise BadInputError(f"expected {batch} token id(s) in 0..{self.spec.vocab_size - 1}, got {frame!r}")
            return ids.astype(np.int64)
        x = np.asarray(frame, np.float32)
        if x.ndim == 1:
            x = x[None, :]
        F = self.spec.input_size
        if x.shape != (batch, F):
            raise BadInputError(f"expected a frame of shape ({batch}, {F}), got {tuple(np.shape(frame))}")
        if not np.isfinite(x).all():
            raise BadInputError("frame has NaN or infinite values")
        if self._mean is not None:
            x = (x - self._mean) / self._std
        return np.ascontiguousarray(x, np.float32)


class SlidingWindowSession:
    """One stream answered as if each output were ``predict`` on its last ``window`` frames.

    A model trained on T-step windows has only ever seen T steps from a zero state; carried on
    over a long stream (``StreamSession``) its state drifts out of what it was trained on. Here
    every output starts from a zero state T frames back: the step graph runs ``ceil(T / hop)``
    staggered copies of the stream as one batch — one started every ``hop`` frames — and each
    copy answers once it has seen T frames, then starts over. Cost per frame: one step-graph call
    of batch ``ceil(T / hop)`` (a window graph re-run over T frames would take T calls).

    ``push(frame)`` returns a ``(prediction, frames_seen)`` every ``hop`` frames, else None. Until T
    frames have come, outputs cover the frames so far (warm-up: ``frames_seen < window``).

    >>> sliding = SlidingWindowSession(model.stream(), window=20, hop=5)
    >>> out = sliding.push([0.1, 0.4, 0.2])
    """

    def __init__(self, stream: StreamSession, window: int, hop: int = 1):
        if window < 1 or hop < 1:
            raise BadInputError(f"expected a window and a hop of at least 1 frame, got window {window}, hop {hop}")
        self.window, self.hop = window, hop
        self.slots = -(-window // hop)  # ceil: copies alive at once
        # one stream per copy alive at once: the given session when it has that batch, else one like it
        self.session = stream if stream.batch == self.slots else StreamSession(stream.spec, stream.backend,
                                                                                batch=self.slots)
        self.spec = stream.spec
        self.reset()

    def reset(self) -> None:
        """Forget every frame so far."""
        self.session.reset()
        self.age = np.full(self.slots, -1)  # frames each copy has seen; -1: idle
        self.frames = 0  # since the last reset

    def push(self, frame) -> tuple[Prediction, int] | None:
        x = self.session.prepare(frame, 1)  # (1, F) normalised, or (1,) token ids
        if self.frames % self.hop == 0:  # a copy starts here
            k = int(np.flatnonzero(self.age < 0)[0])
            self.session.reset(k)
            self.age[k] = 0
        y = self.session.step_raw(np.repeat(x, self.slots, axis=0))  # (slots, O): one call for every copy
        active = self.age >= 0
        self.age[active] += 1
        self.frames += 1
        oldest = int(np.argmax(self.age))
        seen = int(self.age[oldest])
        if seen >= self.window:
            self.age[oldest] = -1  # answered its window: idle until the next start
        if (self.frames - self.window) % self.hop != 0:
            return None
        return postprocess(self.spec, y[oldest : oldest + 1]), seen


def step_fn(backend):
    """The step graph as a function for parity checks: ``(x_t, state) → outputs``."""

    def run(x_t: np.ndarray, state: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return backend.run({"x_t": x_t, **state})

    return run
