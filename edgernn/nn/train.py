"""The training loop: Adam, MSE or cross-entropy, early stopping on validation loss.

``train()`` reads a DataSource, fits the normalisation on the training split, trains, restores the
best epoch, measures the test split against trivial baselines, and writes a self-describing run
folder (checkpoint, metrics.json, plots). The folder appears whole or not at all.
"""

from __future__ import annotations

import json
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edgernn import __version__, data
from edgernn.bundle import atomic_write_text
from edgernn.checkpoint import save_checkpoint
from edgernn.datasource import DataSource
from edgernn.errors import BadInputError
from edgernn.metrics import baseline_metrics, task_metrics
from edgernn.nn.batches import baseline_train_targets, batches_for, predict_dataset
from edgernn.nn.device import Precision, describe_device, resolve_device
from edgernn.nn.distributed import World, distributed_context, wants_cuda
from edgernn.nn.fit import FitSettings, fit
from edgernn.nn.model import build_model
from edgernn.nn.resume import RESUME_NAME, ResumeState
from edgernn.spec import ModelSpec
from edgernn.staging import check_target, staged_dir


@dataclass(frozen=True)
class TrainConfig:
    cell: str = "lstm"
    hidden_size: int = 32
    num_layers: int = 1
    bidirectional: bool = False
    dropout: float = 0.0
    epochs: int = 60
    batch_size: int = 64
    lr: float = 5e-3
    patience: int = 8
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


def predict_numpy(model: nn.Module, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
    model.eval()
    outs = []
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            outs.append(model(torch.from_numpy(x[start : start + batch_size])).numpy())
    return np.concatenate(outs) if outs else np.zeros((0,), np.float32)


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
    best = (outcome.best.val_loss, outcome.best.state, outcome.best.epoch)
    model.to("cpu").load_state_dict(best[1])
    model.eval()
    if not world.is_main:  # rank 0 evaluates and writes; the weights are the same on every rank
        weights = {k: v.numpy().astype(np.float32) for k, v in model.state_dict().items()}
        return TrainResult(spec=spec, weights=weights, run_dir=Path(out), metrics={}, history=history)

    te = splits.test
    pred = predict_dataset(model, te, norm, device=device)
    if spec.head != "classification":
        pred = data.denormalize_y(pred, norm)
    last_values = te.x[:, -1, : spec.output_size] if spec.head == "forecast" and te.features >= spec.output_size else None
    metrics = {
        "task": source.label,
        "head": spec.head,
        "test": task_metrics(spec.head, te.y, pred, spec.output_size),
        "baselines": baseline_metrics(spec.head, baseline_train_targets(tr, norm), te.y, spec.output_size, last_values),
        "best_epoch": best[2],
        "epochs_run": len(history),
        "train_seconds": round(seconds, 2),
        "hardware": {"device": describe_device(device), "precision": precision.name, "processes": world.size,
                     "workers": config.workers, **outcome.throughput},
        "parameters": spec.parameter_count(),
        "samples": {"train": tr.n, "val": splits.val.n, "test": te.n},
        "notes": list(tr.notes),
    }
    weights = {k: v.numpy().astype(np.float32) for k, v in model.state_dict().items()}
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
        from edgernn import plots

        plots.loss_curve(history, tmp / "loss.png")
        if spec.head == "classification":
            plots.confusion(te.y, pred.argmax(axis=1), spec.labels or tuple(map(str, range(spec.output_size))),
                            tmp / "confusion.png")
        else:
            plots.prediction_vs_truth(te.y, pred, tmp / "predictions.png", title=source.label)
    return TrainResult(spec=spec, weights=weights, run_dir=Path(out), metrics=metrics, history=history)


def check_config(config: TrainConfig) -> None:
    if config.hidden_size < 1 or config.num_layers < 1 or config.epochs < 1 or config.batch_size < 1:
        raise BadInputError("hidden size, layers, epochs and batch size must be positive integers")
    if not 0.0 <= config.dropout < 1.0:
        raise BadInputError(f"dropout must be in [0, 1), got {config.dropout}")
    if config.workers < 0:
        raise BadInputError(f"--workers must be 0 or more, got {config.workers}")
