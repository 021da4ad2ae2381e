"""Each variant's latency ratio to fp32, measured once at export for the manifest.

A cheap, indicative figure (``edgernn bench`` is the real measurement): batch 1, one thread, the
window graph over one window of the model's length (``spec.window``, else 20 steps) and the step
graph for one step, each against the fp32 graph of the same format and kind, timed in interleaved
rounds on the exporting machine so that load from other processes falls on both alike.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from edgernn.bundle import Variant
from edgernn.runtime.model import open_backend

ROUNDS = 7
CALLS = 15
DEFAULT_LENGTH = 20


def _feeds(variant: Variant, length: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    feeds = {}
    for tensor in variant.inputs:
        shape = [1 if d == "batch" else length if d == "time" else d for d in tensor.shape]
        if tensor.name in ("x", "x_t"):
            feeds[tensor.name] = rng.standard_normal(shape).astype(np.float32)
        else:
            feeds[tensor.name] = np.zeros(shape, np.float32)
    return feeds


def _runner(folder: Path, variant: Variant, length: int):
    backend = open_backend(Path(folder) / variant.file, variant.format, 1)
    feeds = _feeds(variant, length)
    return (lambda: backend.run(feeds)), backend


def _p50(fn) -> float:
    samples = []
    for _ in range(CALLS):
        started = time.perf_counter_ns()
        fn()
        samples.append(time.perf_counter_ns() - started)
    return float(np.median(samples)) / 1e3


def measure_ratio(folder: Path, variant: Variant, fp32: Variant, length: int) -> dict:
    """``{"vs_fp32", "p50_us", "fp32_p50_us", …}`` for one variant, or ``{"not_measured": why}``."""
    try:
        ours, backend = _runner(folder, variant, length)
        theirs, _ = _runner(folder, fp32, length)
        for fn in (ours, theirs, ours, theirs):
            fn()
        pairs = [(_p50(ours), _p50(theirs)) for _ in range(ROUNDS)]
    except Exception as e:  # a runtime not installed here, a contrib op missing: say so, do not fail export
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return {"not_measured": first[:200]}
    ratio = float(np.median([a / b for a, b in pairs]))
    return {"vs_fp32": round(ratio, 3), "p50_us": round(float(np.median([a for a, _ in pairs])), 2),
            "fp32_p50_us": round(float(np.median([b for _, b in pairs])), 2),
            "batch": 1, "time_steps": length if variant.graph == "window" else 1, "threads": 1,
            "runtime": f"{getattr(backend, 'name', variant.format)} {getattr(backend, 'version', '')}".strip(),
            "how": "measured once at export on the exporting machine (indicative; `edgernn bench` measures properly)"}


def with_latency(folder: Path, variants: list[Variant], length: int | None = None) -> list[Variant]:
    """``variants`` with ``quantization["latency"]`` set on every non-fp32 variant that has an fp32
    twin (same format and graph)."""
    fp32 = {(v.format, v.graph): v for v in variants if v.precision == "fp32"}
    out = []
    for v in variants:
        twin = fp32.get((v.format, v.graph))
        if v.precision != "fp32" and twin is not None:
            spec_length = length or DEFAULT_LENGTH
            v = replace(v, quantization={**v.quantization, "latency": measure_ratio(folder, v, twin, spec_length)})
        out.append(v)
    return out
