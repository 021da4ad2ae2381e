"""The training loop: Adam, MSE or cross-entropy, early stopping on validation loss.

``train()`` reads a DataSource, fits the normalisation on the training split, trains, restores the
best epoch, measures the test split against trivial baselines, and writes a self-describing run
folder (checkpoint, metrics.json, plots). The folder appears whole or not at all.
"""

from __future__ import annotations

import json
import platform
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edgernn import __version__, data, plots
from edgernn.bundle import atomic_write_text
from edgernn.checkpoint import save_checkpoint
from edgernn.datasource import DataSource
from edgernn.errors import BadInputError
from edgernn.metrics import baseline_metrics, forecast_baselines, task_metrics, verdict
from edgernn.nn.batches import baseline_train_targets, batches_for, predict_dataset
from edgernn.nn.device import Precision, describe_device, resolve_device
from edgernn.nn.distributed import World, distributed_context, wants_cuda
from edgernn.nn.fit import FitSettings, fit
from edgernn.nn.model import build_model
from edgernn.nn.resume import RESUME_NAME, ResumeState
from edgernn.spec import ModelSpec
from edgernn.staging import check_target, staged_dir
from edgernn.transforms import ForecastTransform, invert_outputs, transform_inputs, transform_targets


@dataclass(frozen=True)
class TrainConfig:
    cell: str = "lstm"
    hidden_size: int = 32
    num_layers: int = 1
    bidirectional: bool = False
    dropout: float = 0.0
    epochs: int | None = None  # None: enough for about 1000 gradient steps, 60..500 (see data_size_defaults)
    batch_size: int | None = None  # None: picked from the training set's size (see data_size_defaults)
    lr: float = 5e-3
    patience: int | None = None  # None: picked from the number of gradient steps per epoch
    seed: int = 0
    threads: int | None = None
    device: str = "auto"  # auto|cpu|cuda|cuda:N|mps
    precision: str = "fp32"  # fp32|bf16|fp16 (autocast; weights stay fp32)
    workers: int = 0  # DataLoader worker processes


@dataclass
class TrainResult:
    spec: ModelSpec
    weights: dict[str, np.ndarray]
    run_dir: Path
    metrics: dict[str, Any]
    history: list[dict[str, float]] = field(default_factory=list)


def _transformed(ds: data.Dataset, transform: ForecastTransform):
    """A forecasting Dataset with its windows and targets transformed, and the context to invert forecasts."""
    x, context = transform_inputs(transform, ds.x, ds.y.shape[1])
    y = transform_targets(transform, ds.y, context)
    return data.Dataset(x, y, ds.head, name=ds.name, notes=ds.notes, layout=ds.layout, season=ds.season), context


def data_size_defaults(config: TrainConfig, n_train: int) -> tuple[TrainConfig, list[str]]:
    """Fill a batch size, patience and epoch budget left open (None) from the training set's size, and say
    what was picked.

    Small sets get small batches (about a tenth of the set, 8..64, a power of two) so that an epoch is
    several gradient steps, a patience of about 200 gradient steps (8..30 epochs), so early stopping
    does not end training after a handful of updates, and at most enough epochs for about 1000
    gradient steps (60..500).
    """
    picked = []
    batch = config.batch_size
    if batch is None:
        batch = int(min(64, max(8, 2 ** round(math.log2(max(n_train, 1) / 10)))))
        picked.append(f"batch size {batch}")
    steps = max(1, math.ceil(n_train / batch))
    patience = config.patience
    if patience is None:
        patience = int(min(30, max(8, math.ceil(200 / steps))))
        picked.append(f"patience {patience} epochs ({steps} gradient steps per epoch)")
    epochs = config.epochs
    if epochs is None:
        epochs = int(min(500, max(60, math.ceil(1000 / steps))))
        picked.append(f"at most {epochs} epochs")
    notes = [f"picked {', '.join(picked)} for {n_train} training cases"] if picked else []
    return replace(config, batch_size=batch, patience=patience, epochs=epochs), notes


def train(source: DataSource, config: TrainConfig, out: Path, *, progress: bool = True,
          resume: ResumeState | None = None) -> TrainResult:
    """Train as one process, or as one rank of a ``torchrun`` job (see ``edgernn.nn.distributed``)."""
    with distributed_context("cuda" if wants_cuda(config.device) else "cpu") as world:
        return _train(source, config, out, progress=progress, resume=resume, world=world)


def _train(source: DataSource, config: TrainConfig, out: Path, *, progress: bool, resume: ResumeState | None,
           world: World) -> TrainResult:
    check_target(Path(out))  # before training, not after it
    if config.threads:
        torch.set_num_threads(config.threads)
    device = resolve_device(config.device, local_rank=world.local_rank if world.active else None)
    precision = Precision(config.precision, device)
    splits = source.splits()
    tr = splits.train
    config, picked = data_size_defaults(config, tr.n)
    scored_on = "official test file" if source.test_path else "test split"
    if splits.test.n == 0:  # no test split asked for: report on validation, and say so
        splits = data.Splits(tr, splits.val, splits.val)
        scored_on = "validation split (no test split)"
    transform, raw_train, raw_test, test_context = source.transform, splits.train, splits.test, None
    if transform is not None:  # forecasting transforms: the model learns transformed windows and targets
        if tr.head != "forecast":
            raise BadInputError(f"--target change, --log and --window-scale apply to --head forecast only, got {tr.head}")
        (tr, val, te), contexts = zip(*(_transformed(part, transform) for part in (splits.train, splits.val, splits.test)))
        splits, test_context = data.Splits(tr, val, te), contexts[2]
    norm = getattr(splits, "normalization", None) or data.fit_normalization(tr)  # mapped data: one pass
    spec = ModelSpec(
        cell=config.cell,
        input_size=tr.features,
        hidden_size=config.hidden_size,
        num_layers=config.num_layers,
        bidirectional=config.bidirectional,
        dropout=config.dropout,
        head=tr.head,
        output_size=tr.output_size,
        labels=tuple(tr.labels),
        window=tr.window,
        task=source.label,
        normalization=norm,
        data_layout=getattr(tr, "layout", None) or None,
        variable_length=getattr(tr, "lengths", None) is not None,
        forecast_transform=transform,
    )
    if resume is not None and resume.run.get("spec") != json.loads(json.dumps(spec.to_dict())):
        raise BadInputError(f"--resume: the data or model options differ from the run being continued "
                            f"({RESUME_NAME} records another spec); continue it with the options it was started with")
    model = build_model(spec, seed=config.seed)
    train_data, val_data = batches_for(tr, norm), batches_for(splits.val, norm)
    settings = FitSettings(epochs=config.epochs, batch_size=config.batch_size, lr=config.lr,
                           patience=config.patience, seed=config.seed, workers=config.workers)
    run_info = {"spec": spec.to_dict(), "config": asdict(config), "data": source.to_dict()}
    outcome = fit(model, train_data, val_data, spec.head, settings, device=device, precision=precision,
                  world=world, run_dir=Path(out), run_info=run_info, resume=resume, progress=progress,
                  desc=f"train {spec.cell} on {source.label}")
    history, seconds = outcome.history, outcome.train_seconds
    model.to("cpu").load_state_dict(outcome.best.state)
    model.eval()
    weights = {k: v.numpy().astype(np.float32) for k, v in model.state_dict().items()}
    if not world.is_main:  # rank 0 evaluates and writes; the weights are the same on every rank
        return TrainResult(spec=spec, weights=weights, run_dir=Path(out), metrics={}, history=history)

    te = splits.test
    pred = predict_dataset(model, te, norm, device=device)
    if spec.head != "classification":
        pred = data.denormalize_y(pred, norm)
    if transform is not None:  # back to data units, scored against the raw targets
        pred, te = invert_outputs(transform, pred, test_context).astype(np.float32), raw_test
    baselines = baseline_metrics(spec.head, baseline_train_targets(raw_train, norm), te.y, spec.output_size)
    if spec.head == "forecast":
        season = source.season or getattr(tr, "season", None)
        baselines.update(forecast_baselines(te.x, np.asarray(te.y), horizon=source.horizon, season=season))
    test_metrics = task_metrics(spec.head, te.y, pred, spec.output_size)
    metrics = {
        "task": source.label,
        "head": spec.head,
        "scored_on": scored_on,
        "test": test_metrics,
        "baselines": baselines,
        "verdict": verdict(test_metrics, baselines) if spec.head == "forecast" else "",
        "best_epoch": outcome.best.epoch,
        "epochs_run": len(history),
        "train_seconds": round(seconds, 2),
        "hardware": {"device": describe_device(device), "precision": precision.name, "processes": world.size,
                     "workers": config.workers, **outcome.throughput},
        "parameters": spec.parameter_count(),
        "samples": {"train": tr.n, "val": splits.val.n, "test": te.n},
        "notes": list(tr.notes) + picked,
        "config": {"batch_size": config.batch_size, "patience": config.patience, "epochs": config.epochs},
    }
    info = {
        "spec": spec.to_dict(),
        "config": asdict(config),
        "data": source.to_dict(),
        "metrics": metrics,
        "history": history,
        "versions": {"edgernn": __version__, "torch": torch.__version__, "numpy": np.__version__,
                     "python": platform.python_version()},
    }
    with staged_dir(Path(out)) as tmp:
        save_checkpoint(tmp, info, weights)
        if (Path(out) / RESUME_NAME).is_file():  # the last epoch's state, so the run can be extended
            (tmp / RESUME_NAME).write_bytes((Path(out) / RESUME_NAME).read_bytes())
        atomic_write_text(tmp / "metrics.json", json.dumps(metrics, indent=2) + "\n")
        plots.loss_curve(history, tmp / "loss.png")
        if spec.head == "classification" and te.n:
            plots.confusion(te.y, pred.argmax(axis=1), spec.labels or tuple(map(str, range(spec.output_size))),
                            tmp / "confusion.png")
        elif te.n:
            plots.prediction_vs_truth(te.y, pred, tmp / "predictions.png", title=source.label)
    return TrainResult(spec=spec, weights=weights, run_dir=Path(out), metrics=metrics, history=history)


def check_config(config: TrainConfig) -> None:
    open_or_positive = all(v is None or v >= 1 for v in (config.batch_size, config.patience, config.epochs))
    if config.hidden_size < 1 or config.num_layers < 1 or not open_or_positive:
        raise BadInputError("hidden size, layers, epochs, batch size and patience must be positive integers")
    if not 0.0 <= config.dropout < 1.0:
        raise BadInputError(f"dropout must be in [0, 1), got {config.dropout}")
    if config.workers < 0:
        raise BadInputError(f"--workers must be 0 or more, got {config.workers}")
