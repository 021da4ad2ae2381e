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

from edgernn.bundle import read_manifest
from edgernn.errors import BadInputError, MissingDependencyError
from edgernn.metrics import PRIMARY_METRIC, task_metrics
from edgernn.plots import save_figure
from edgernn.runtime.model import normalize_input, postprocess

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
    """The windows to evaluate on: ``--data`` as a whole, else the test split the model was trained with."""
    from edgernn import data
    from edgernn.datasource import DataSource

    manifest = read_manifest(bundle)
    spec = manifest.spec
    if data_path is not None:
        ds = data.load_data(data_path, head=spec.head, window=spec.window)
        return ds, str(data_path)
    source = manifest.data
    if not source and checkpoint is not None:
        from edgernn.checkpoint import load_checkpoint

        source = load_checkpoint(checkpoint).data
    if not source:
        if spec.task in data.BUILTIN_TASKS:
            source = {"task": spec.task, "window": spec.window}
        else:
            raise BadInputError("this bundle does not say what data it was trained on; pass --data FILE")
    ds = DataSource.from_dict(source)
    return ds.splits().test, f"{ds.label} (test split)"


def evaluate_bundle(
    bundle: Path,
    *,
    data_path: Path | None = None,
    checkpoint: Path | None = None,
    max_drop: float | None = None,
    threads: int | None = 1,
) -> EvaluationReport:
    from edgernn.runtime import load

    manifest = read_manifest(bundle)
    spec = manifest.spec
    ds, label = evaluation_data(bundle, data_path, checkpoint)
    if ds.features != spec.input_size:
        raise BadInputError(f"expected data with {spec.input_size} features, got {ds.features}")
    budget = DEFAULT_MAX_DROP[spec.head] if max_drop is None else max_drop
    metric, _ = PRIMARY_METRIC[spec.head]
    report = EvaluationReport(str(bundle), label, spec.head, metric,
                              "accuracy points" if spec.head == "classification" else "% MSE", budget, ds.n)

    runs = []  # (name, precision, format, size, window fn: normalised (B, T, F) -> {"y": raw y})
    if checkpoint is not None:
        runs.append(_torch_run(checkpoint, spec))
    for v in manifest.variants:
        try:
            model = load(bundle, variant=v.name, threads=threads)
        except MissingDependencyError as e:  # a .tflite variant without a TFLite runtime: as verify and bench do
            report.skipped.append({"variant": v.name, "reason": str(e)})
            continue
        window_fn = model.window if v.graph == "window" else stepped_window(model)
        runs.append((v.name, v.precision, v.format, v.size, window_fn))
    x = normalize_input(spec, ds.x)
    reference = None
    outputs = {}
    for name, precision, fmt, size, window_fn in runs:
        y = np.concatenate([window_fn(x[i : i + 256])["y"] for i in range(0, len(x), 256)])
        outputs[name] = postprocess(spec, y).values
        metrics = task_metrics(spec.head, ds.y, outputs[name], spec.output_size)
        graph = "step" if "-step-" in name else "window"
        score = VariantScore(name, precision, fmt, metrics, size, _latency_ms(window_fn, x[:1]), graph=graph)
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
    return report


def stepped_window(model):
    """A step variant as a window function: the step graph run frame by frame over each window from a
    zero state — what a streaming device computes — returning the last step's output (every step's
    output for a head on every step)."""
    from edgernn.runtime.stream import StreamSession

    def window(x: np.ndarray) -> dict[str, np.ndarray]:
        session = StreamSession(model.spec, model.backend, batch=x.shape[0])
        ys = [session.step_raw(np.ascontiguousarray(x[:, t])) for t in range(x.shape[1])]  # T × (B, O)
        return {"y": np.stack(ys, axis=1) if model.spec.head_input == "every_step" else ys[-1]}

    return window


def _torch_run(checkpoint: Path, spec):
    import torch

    from edgernn.checkpoint import load_checkpoint
    from edgernn.nn import load_torch_model

    ckpt = load_checkpoint(checkpoint)
    if ckpt.spec != spec:
        raise BadInputError(f"{checkpoint}: this checkpoint's model spec differs from the bundle's")
    model = load_torch_model(spec, ckpt.weights)

    def window(x: np.ndarray) -> dict[str, np.ndarray]:
        with torch.no_grad():
            return {"y": model(torch.from_numpy(np.ascontiguousarray(x))).numpy()}

    size = (Path(ckpt.path) / "model.safetensors").stat().st_size
    return ("pytorch-fp32", "fp32", "pytorch", size, window)


def plot_report(report: EvaluationReport, path: Path) -> None:
    """The evaluation as a figure (see ``edgernn.plots_evaluate``)."""
    from edgernn.plots_evaluate import plot_evaluation

    plot_evaluation(report, path)
