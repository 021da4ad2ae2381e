"""`edgernn bench`: latency, throughput, cold start and memory of every variant of a bundle.

What is timed, per variant (all through the Python runtime API, one process, ``threads`` intra-op
threads):

- window graphs: ``Model.window`` on a ``(1, T, F)`` and a ``(B, T, F)`` batch of windows — raw graph
  calls on normalised input, so no pre/post-processing — as p50/p90/p99, and windows per second;
- step graphs: ``Model.stream().step_raw`` on one frame, carrying the state (the streaming path),
  beside ``step()`` with normalisation and post-processing, and bare ``InferenceSession.run`` on the
  same graph (the floor the Python API sits on);
- cold start: a fresh ``python -c`` that imports ``edgernn.runtime``, loads the variant and predicts
  once, timed from spawn to its first line of output, with its peak RSS; next to it a bare script
  that imports onnxruntime, opens the same file and runs it once (see ``edgernn.bench.coldstart``).

With a checkpoint, PyTorch eager and a plain ``torch.onnx.export`` of the model are measured the
same way in the same run (``edgernn.bench.torch_compare``, the only place torch is imported). Timings are
figures to print, never assertions.
"""

from __future__ import annotations

import gc
import itertools
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from edgernn.errors import BadInputError
from edgernn.spec import ModelSpec

DEFAULT_BATCH = 64
DEFAULT_LENGTH = 50  # when the spec records no training window and no --length is given
DEFAULT_COLD_RUNS = 3
BUDGET_SECONDS = 0.3  # per measurement, when no repeat count is given
MIN_REPEAT, MAX_REPEAT = 100, 10_000
FRAMES = 256  # distinct input frames cycled through while stepping


# --- timing ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Latency:
    """Percentiles of one call's wall time, in microseconds."""

    p50_us: float
    p90_us: float
    p99_us: float
    mean_us: float
    min_us: float
    n: int

    @classmethod
    def from_ns(cls, samples_ns: Sequence[int]) -> "Latency":
        us = np.asarray(samples_ns, np.float64) / 1e3
        p50, p90, p99 = np.percentile(us, [50, 90, 99])
        return cls(float(p50), float(p90), float(p99), float(us.mean()), float(us.min()), int(us.size))

    def per_second(self, items: int = 1) -> float:
        """Items per second at the mean call time."""
        return items * 1e6 / self.mean_us


def measure(fn: Callable[[], Any], repeat: int | None = None) -> Latency:
    """Time ``fn()`` call by call after a warm-up; ``repeat`` calls, or as many as fit the budget."""
    warm_started = time.perf_counter()
    warm_calls = 0
    while warm_calls < 10 or (time.perf_counter() - warm_started < 0.05 and warm_calls < 1000):
        fn()
        warm_calls += 1
    if repeat is None:
        per_call = (time.perf_counter() - warm_started) / warm_calls
        repeat = int(min(MAX_REPEAT, max(MIN_REPEAT, BUDGET_SECONDS / per_call)))
    samples = [0] * repeat
    clock = time.perf_counter_ns
    gc_was_enabled = gc.isenabled()
    gc.disable()  # as timeit does: a collection in the loop would land in one sample
    try:
        for i in range(repeat):
            started = clock()
            fn()
            samples[i] = clock() - started
    finally:
        if gc_was_enabled:
            gc.enable()
    return Latency.from_ns(samples)


def cycling(frames: np.ndarray) -> Callable[[], np.ndarray]:
    """A function returning the next frame of ``frames`` on each call, round and round."""
    return itertools.cycle(list(frames)).__next__


def speedup(reference: Latency | None, ours: Latency | None) -> float | None:
    """How many times faster ``ours`` is than ``reference`` at p50 (above 1: ours is faster)."""
    if reference is None or ours is None:
        return None
    return reference.p50_us / ours.p50_us


# --- what a run measures and reports -------------------------------------------------------------


@dataclass(frozen=True)
class BenchSettings:
    threads: int = 1
    batch: int = DEFAULT_BATCH
    length: int | None = None  # window length; default spec.window, else DEFAULT_LENGTH
    repeat: int | None = None  # timed calls per measurement; default: fit BUDGET_SECONDS
    cold_runs: int = DEFAULT_COLD_RUNS  # fresh processes per cold start figure (median); 0 skips
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("threads", "batch"):
            if getattr(self, name) < 1:
                raise BadInputError(f"--{name} must be at least 1, got {getattr(self, name)}")
        if self.length is not None and self.length < 1:
            raise BadInputError(f"--length must be at least 1, got {self.length}")
        if self.repeat is not None and self.repeat < 1:
            raise BadInputError(f"--repeat must be at least 1, got {self.repeat}")
        if self.cold_runs < 0:
            raise BadInputError(f"--cold-runs must be 0 or more, got {self.cold_runs}")


@dataclass
class WindowFigures:
    length: int
    batch: int
    batch1: Latency
    batched: Latency

    @property
    def windows_per_s(self) -> float:
        return self.batched.per_second(self.batch)


@dataclass
class StepFigures:
    raw: Latency  # StreamSession.step_raw: the streaming path of the Python API
    api: Latency | None = None  # StreamSession.step: with normalisation and post-processing
    onnxruntime: Latency | None = None  # InferenceSession.run alone on the same graph

    @property
    def steps_per_s(self) -> float:
        return self.raw.per_second()


@dataclass
class ColdStart:
    """Spawn to first output of a fresh process, median over ``runs``; peak RSS is the largest seen."""

    seconds: float
    peak_rss_mib: float | None
    runs: list[float]
    bare_seconds: float | None = None
    bare_peak_rss_mib: float | None = None

    @property
    def ratio_to_bare(self) -> float | None:
        return self.seconds / self.bare_seconds if self.bare_seconds else None


@dataclass
class VariantResult:
    name: str
    graph: str
    format: str
    precision: str
    file: str
    size_bytes: int
    window: WindowFigures | None = None
    step: StepFigures | None = None
    cold_start: ColdStart | None = None
    vs_pytorch: float | None = None  # speed-up at p50: window batch 1, or step
    vs_pytorch_batched: float | None = None  # window graphs: at the larger batch
    vs_torch_onnx_export: float | None = None  # step graphs: vs a plain torch.onnx.export run per step


@dataclass
class BenchReport:
    bundle: str
    model: dict[str, Any]
    settings: BenchSettings
    machine: dict[str, Any]
    variants: list[VariantResult] = field(default_factory=list)
    pytorch: dict[str, Any] | None = None  # {"window": WindowFigures, "step": Latency|None, "version"}
    torch_onnx_export: dict[str, Any] | None = None  # {"step": Latency, "size_bytes"} or {"skipped": why}
    cli_cold_start: ColdStart | None = None  # `edgernn run` on the default window variant
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return _plain(self)


def _plain(obj: Any) -> Any:
    """Dataclasses → dicts (with derived figures added), recursively, for --json."""
    if isinstance(obj, (WindowFigures, StepFigures, ColdStart)):
        d = {k: _plain(v) for k, v in asdict(obj).items()}
        if isinstance(obj, WindowFigures):
            d["windows_per_s"] = obj.windows_per_s
        elif isinstance(obj, StepFigures):
            d["steps_per_s"] = obj.steps_per_s
        else:
            d["ratio_to_bare"] = obj.ratio_to_bare
        return d
    if isinstance(obj, Latency):
        return asdict(obj)
    if hasattr(obj, "__dataclass_fields__"):
        return {name: _plain(getattr(obj, name)) for name in obj.__dataclass_fields__}
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def machine_info() -> dict[str, Any]:
    import onnxruntime

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    return {"platform": platform.platform(), "cpu": cpu, "cpu_count": os.cpu_count(),
            "python": platform.python_version(), "onnxruntime": onnxruntime.__version__, "numpy": np.__version__}


def model_summary(spec: ModelSpec) -> dict[str, Any]:
    return {"cell": spec.cell, "num_layers": spec.num_layers, "hidden_size": spec.hidden_size,
            "input_size": spec.input_size, "output_size": spec.output_size, "head": spec.head,
            "bidirectional": spec.bidirectional, "parameters": spec.parameter_count(), "task": spec.task}


# --- measuring a variant --------------------------------------------------------------------------


def window_inputs(spec: ModelSpec, batch: int, length: int, seed: int) -> np.ndarray:
    """Normalised windows ``(batch, length, F)``, seeded."""
    return np.random.default_rng(seed).standard_normal((batch, length, spec.input_size)).astype(np.float32)


def step_frames(spec: ModelSpec, batch: int, seed: int) -> np.ndarray:
    """``FRAMES`` normalised frames, each ``(batch, F)``."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((FRAMES, batch, spec.input_size)).astype(np.float32)


def bench_window(model, settings: BenchSettings, length: int) -> WindowFigures:
    spec = model.spec
    x1 = window_inputs(spec, 1, length, settings.seed)
    xb = window_inputs(spec, settings.batch, length, settings.seed + 1)
    return WindowFigures(length=length, batch=settings.batch,
                         batch1=measure(lambda: model.window(x1), settings.repeat),
                         batched=measure(lambda: model.window(xb), settings.repeat))


def bench_step(model, settings: BenchSettings) -> StepFigures:
    spec = model.spec
    frames = step_frames(spec, 1, settings.seed)
    session = model.stream(batch=1)
    next_frame = cycling(frames)
    raw = measure(lambda: session.step_raw(next_frame()), settings.repeat)

    session.reset()
    data_frames = cycling(frames[:, 0])  # (F,) frames in data units for step()
    api = measure(lambda: session.step(data_frames()), settings.repeat)

    onnxruntime_only = None
    ort_session = getattr(session.backend, "session", None)
    if ort_session is not None:  # onnxruntime alone, fixed feeds: the floor under step_raw
        feeds = {"x_t": frames[0], **session.state}
        onnxruntime_only = measure(lambda: ort_session.run(None, feeds), settings.repeat)
    return StepFigures(raw=raw, api=api, onnxruntime=onnxruntime_only)
