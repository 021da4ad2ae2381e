"""Quantization accuracy on task data: the task metric of every window variant beside float.

For each window variant of a bundle (and PyTorch, given the checkpoint), the test windows are
predicted through the runtime exactly as on a device, the task metric is computed, and the drop
relative to the ONNX fp32 variant is checked against a budget: accuracy points for classifiers,
relative MSE for regression and forecasting.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgernn import data
from edgernn.bundle import read_manifest
from edgernn.checkpoint import load_checkpoint
from edgernn.datasource import DataSource
from edgernn.errors import BadInputError, MissingDependencyError
from edgernn.metrics import PRIMARY_METRIC, forecast_baselines, task_metrics, verdict
from edgernn.runtime import load
from edgernn.runtime.coverage import input_range, outside_share
from edgernn.runtime.processing import by_length, finish_outputs, prepare_windows
from edgernn.runtime.stream import StreamSession

REFERENCE_VARIANT = "onnx-window-fp32"
# Default budgets: 1 point of accuracy, or 2 % relative MSE.
DEFAULT_MAX_DROP = {"classification": 1.0, "regression": 2.0, "forecast": 2.0}


@dataclass
class VariantScore:
    variant: str
    precision: str
    format: str
    metrics: dict[str, float]
    size: int
    latency_ms: float  # window latency, batch 1, median
    drop: float = 0.0  # accuracy points lost, or % MSE gained, vs the fp32 variant
    passed: bool = True
    graph: str = "window"  # window | step (scored as streamed: frame by frame over each window)
    max_abs_vs_fp32: float = 0.0  # largest |output - fp32 output| (data units, or probabilities)
    outside_calibration: float | None = None  # int8-static: share of input values outside its calibrated range


@dataclass
class EvaluationReport:
    bundle: str
    data: str
    head: str
    metric: str
    drop_unit: str
    max_drop: float
    samples: int
    scores: list[VariantScore] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)  # {"variant", "reason"}: could not run here
    # variant → |output - fp32 output| over the data, for the plot's histogram (not in to_dict)
    differences: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)
    baselines: dict[str, dict[str, float]] = field(default_factory=dict)  # forecasting: persistence, seasonal naive
    verdict: str = ""  # forecasting: does the fp32 model beat persistence, in one sentence

    @property
    def passed(self) -> bool:
        return all(s.passed for s in self.scores)

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if k != "differences"}
        d["passed"] = self.passed
        return d


def drop_of(head: str, metrics: dict[str, float], reference: dict[str, float]) -> float:
    if head == "classification":
        return 100.0 * (reference["accuracy"] - metrics["accuracy"])
    return 100.0 * (metrics["mse"] / reference["mse"] - 1.0) if reference["mse"] > 0 else 0.0


def _latency_ms(fn, x_one: np.ndarray, repeat: int = 30) -> float:
    fn(x_one)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn(x_one)
        times.append(time.perf_counter() - start)
    return 1000.0 * float(np.median(times))


def evaluation_data(bundle: Path, data_path: Path | None, checkpoint: Path | None):
    """The windows to evaluate on: ``--data`` as a whole, else the official test file the model was trained
    with (``train --test-data``), else its test split. Class labels map through the spec's label list."""
    manifest = read_manifest(bundle)
    spec = manifest.spec
    if data_path is not None:
        window = spec.window if spec.head == "forecast" else None  # a case file's sequences are its own length
        labels = spec.labels if spec.head == "classification" else None
        if spec.head == "classification" and not labels:
            raise BadInputError("this classifier's spec has no label list to map the file's classes through; "
                                "evaluate it on its training data's test split (omit --data)")
        source = manifest.data or {}
        ds = data.load_data(data_path, head=spec.head, window=window, labels=labels,
                            horizon=int(source.get("horizon", 1)), stride=int(source.get("stride", 1)))
        return ds, str(data_path)
    source = manifest.data
    if not source and checkpoint is not None:
        source = load_checkpoint(checkpoint).data
    if not source:
        if spec.task in data.BUILTIN_TASKS:
            source = {"task": spec.task, "window": spec.window}
        else:
            raise BadInputError("this bundle does not say what data it was trained on; pass --data FILE")
    ds = DataSource.from_dict(source)
    if ds.test_path:
        return ds.splits().test, f"{Path(ds.test_path).name} (official test file)"
    return ds.splits().test, f"{ds.label} (test split)"


def evaluate_bundle(
    bundle: Path,
    *,
    data_path: Path | None = None,
    checkpoint: Path | None = None,
    max_drop: float | None = None,
    threads: int | None = 1,
) -> EvaluationReport:
    manifest = read_manifest(bundle)
    spec = manifest.spec
    ds, label = evaluation_data(bundle, data_path, checkpoint)
    if ds.features != spec.input_size:
        raise BadInputError(f"expected data with {spec.input_size} features, got {ds.features}")
    budget = DEFAULT_MAX_DROP[spec.head] if max_drop is None else max_drop
    metric, _ = PRIMARY_METRIC[spec.head]
    report = EvaluationReport(str(bundle), label, spec.head, metric,
                              "accuracy points" if spec.head == "classification" else "% MSE", budget, ds.n)

    runs = []  # (name, precision, format, size, runner with raw_outputs(x, lengths) and window(x))
    ranges = {}  # int8-static variants: calibrated input range
    if checkpoint is not None:
        runs.append(_torch_run(checkpoint, spec))
    for v in manifest.variants:
        try:
            model = load(bundle, variant=v.name, threads=threads)
        except MissingDependencyError as e:  # a .tflite variant without a TFLite runtime: as verify and bench do
            report.skipped.append({"variant": v.name, "reason": str(e)})
            continue
        runs.append((v.name, v.precision, v.format, v.size, model if v.graph == "window" else StepRunner(model),
                     v.graph))
        ranges[v.name] = input_range(v)
    x, ctx = prepare_windows(spec, ds.x)  # the forecast transform (if any), then the normalisation
    lengths = getattr(ds, "lengths", None)
    one = x[:1] if lengths is None else x[:1, : int(lengths[0])]  # one sequence, unpadded, for latency
    reference = None
    outputs = {}
    for name, precision, fmt, size, runner, graph in runs:
        y = runner.raw_outputs(x, lengths)  # variable length: each sequence at its true length
        outputs[name] = finish_outputs(spec, y, ctx).values
        metrics = task_metrics(spec.head, ds.y, outputs[name], spec.output_size)
        score = VariantScore(name, precision, fmt, metrics, size, _latency_ms(runner.window, one), graph=graph)
        if ranges.get(name):
            score.outside_calibration = round(outside_share(x, ranges[name], lengths), 6)
        report.scores.append(score)
        if name == REFERENCE_VARIANT:
            reference = metrics
    if reference is None:
        raise BadInputError(f"the bundle has no {REFERENCE_VARIANT} variant to compare with")
    for s in report.scores:
        s.drop = round(drop_of(spec.head, s.metrics, reference), 3) + 0.0  # reported to 0.001; no "-0.00"
        s.passed = s.drop <= budget
        report.differences[s.variant] = np.abs(outputs[s.variant] - outputs[REFERENCE_VARIANT]).ravel()
        s.max_abs_vs_fp32 = float(report.differences[s.variant].max(initial=0.0))
    if spec.head == "forecast":
        source = manifest.data or {}
        season = source.get("season") or getattr(ds, "season", None)
        report.baselines = forecast_baselines(ds.x, ds.y, horizon=int(source.get("horizon", 1)), season=season)
        report.verdict = verdict(reference, report.baselines)
    return report


class StepRunner:
    """A step variant scored as a streaming device runs it: the step graph frame by frame over each window
    from a zero state, its last step's output (every step's for a head on every step). With lengths, each
    sequence is stepped over its own frames only."""

    def __init__(self, model):
        self.model = model

    def window(self, x: np.ndarray) -> dict[str, np.ndarray]:
        session = StreamSession(self.model.spec, self.model.backend, batch=x.shape[0])
        ys = [session.step_raw(np.ascontiguousarray(x[:, t])) for t in range(x.shape[1])]  # T × (B, O)
        return {"y": np.stack(ys, axis=1) if self.model.spec.head_input == "every_step" else ys[-1]}

    def raw_outputs(self, x: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
        if lengths is None:
            return np.concatenate([self.window(x[i : i + 256])["y"] for i in range(0, len(x), 256)])
        return by_length(self.raw_outputs, x, lengths)


def _torch_run(checkpoint: Path, spec):
    import torch

    from edgernn.nn import load_torch_model

    ckpt = load_checkpoint(checkpoint)
    if ckpt.spec != spec:
        raise BadInputError(f"{checkpoint}: this checkpoint's model spec differs from the bundle's")
    model = load_torch_model(spec, ckpt.weights)

    class TorchRun:
        @staticmethod
        def window(x: np.ndarray) -> dict[str, np.ndarray]:
            return {"y": TorchRun.raw_outputs(x)}

        @staticmethod
        def raw_outputs(x: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
            with torch.no_grad():
                t = None if lengths is None else torch.from_numpy(np.asarray(lengths, np.int64))
                return model(torch.from_numpy(np.ascontiguousarray(x, np.float32)), t).numpy()

    size = (Path(ckpt.path) / "model.safetensors").stat().st_size
    return ("pytorch-fp32", "fp32", "pytorch", size, TorchRun, "window")
