"""`edgernn bench`: latency, throughput, cold start and memory of every variant of a bundle.

Imports point one way: ``timing`` (the harness and the report's types) ← ``coldstart`` (fresh
processes), ``torch_compare`` (PyTorch eager and a plain torch.onnx.export, torch imported inside its
functions) ← ``run`` (``bench()``, which ties them together). Timings are figures to print, never
assertions.
"""

from edgernn.bench.coldstart import PEAK_RSS_AT_EXIT, cli_cold_start, cold_start, time_to_first_line
from edgernn.bench.run import bench, bench_variant
from edgernn.bench.timing import (
    DEFAULT_BATCH, DEFAULT_COLD_RUNS, DEFAULT_LENGTH, BenchReport, BenchSettings, ColdStart, Latency, StepFigures,
    VariantResult, WindowFigures, bench_step, bench_window, cycling, machine_info, measure, model_summary, speedup,
    step_frames, window_inputs,
)
from edgernn.bench.torch_compare import bench_plain_export, bench_pytorch, bench_torch, load_reference

__all__ = [
    "DEFAULT_BATCH", "DEFAULT_COLD_RUNS", "DEFAULT_LENGTH", "PEAK_RSS_AT_EXIT", "BenchReport", "BenchSettings",
    "ColdStart", "Latency", "StepFigures", "VariantResult", "WindowFigures", "bench", "bench_plain_export",
    "bench_pytorch", "bench_step", "bench_torch", "bench_variant", "bench_window", "cli_cold_start", "cold_start",
    "cycling", "load_reference", "machine_info", "measure", "model_summary", "speedup", "step_frames",
    "time_to_first_line", "window_inputs",
]
