"""The training loop: Adam, MSE or cross-entropy, early stopping on validation loss.

``train()`` reads a DataSource, fits the normalisation on the training split, trains, restores the
best epoch, measures the test split against trivial baselines, and writes a self-describing run
folder (checkpoint, metrics.json, plots). The folder appears whole or not at all.
"""

from __future__ import annotations

import json
import math
import platform
import time
from dataclasses import asdict, dataclass, field, replace
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
from edgernn.metrics import baseline_metrics, forecast_baselines, task_metrics, verdict
from edgernn.nn.model import build_model
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


@dataclass
class TrainResult:
    spec: ModelSpec
    weights: dict[str, np.ndarray]
    run_dir: Path
    metrics: dict[str, Any]
    history: list[dict[str, float]] = field(default_factory=list)


def predict_numpy(model: nn.Module, x: np.ndarray, batch_size: int = 512, lengths: np.ndarray | None = None) -> np.ndarray:
    """Outputs for windows ``x``; with ``lengths``, each right-padded sequence at its true length."""
    model.eval()
    outs = []
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            part = slice(start, start + batch_size)
            outs.append(model(torch.from_numpy(x[part]), _lengths(lengths, part)).numpy())
    return np.concatenate(outs) if outs else np.zeros((0,), np.float32)


def _transformed(ds: data.Dataset, transform: ForecastTransform):
    """A forecasting Dataset with its windows and targets transformed, and the context to invert forecasts."""
    x, context = transform_inputs(transform, ds.x, ds.y.shape[1])
    y = transform_targets(transform, ds.y, context)
    return data.Dataset(x, y, ds.head, name=ds.name, notes=ds.notes, layout=ds.layout, season=ds.season), context


def _lengths(lengths: np.ndarray | None, index) -> torch.Tensor | None:
    return None if lengths is None else torch.from_numpy(np.asarray(lengths[index], np.int64))


def _targets(ds: data.Dataset, norm) -> torch.Tensor:
    if ds.head == "classification":
        return torch.from_numpy(ds.y.astype(np.int64))
    return torch.from_numpy(data.normalize_y(ds.y, norm).astype(np.float32))


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


def train(source: DataSource, config: TrainConfig, out: Path, *, progress: bool = True) -> TrainResult:
    check_target(Path(out))  # before training, not after it
    if config.threads:
        torch.set_num_threads(config.threads)
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
    norm = data.fit_normalization(tr)
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
        data_layout=tr.layout or None,
        variable_length=tr.lengths is not None,
        forecast_transform=transform,
    )
    model = build_model(spec, seed=config.seed)
    x_train = torch.from_numpy(data.normalize_x(tr.x, norm))
    y_train = _targets(tr, norm)
    x_val = torch.from_numpy(data.normalize_x(splits.val.x, norm))
    y_val = _targets(splits.val, norm)
    loss_fn = nn.CrossEntropyLoss() if spec.head == "classification" else nn.MSELoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    generator = torch.Generator().manual_seed(config.seed)

    history: list[dict[str, float]] = []
    best = (math.inf, None, 0)  # (val loss, state, epoch)
    started = time.perf_counter()
    bar = _progress(config.epochs, progress, f"train {spec.cell} on {source.label}")
    for epoch in range(1, config.epochs + 1):
        model.train()
        order = torch.randperm(len(x_train), generator=generator)
        total = 0.0
        for start in range(0, len(order), config.batch_size):
            idx = order[start : start + config.batch_size]
            optimizer.zero_grad()
            loss = loss_fn(model(x_train[idx], _lengths(tr.lengths, idx.numpy())), y_train[idx])
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            total += loss.item() * len(idx)
        model.eval()
        with torch.no_grad():
            val_loss = loss_fn(model(x_val, _lengths(splits.val.lengths, slice(None))), y_val).item()
        history.append({"epoch": epoch, "train_loss": total / len(order), "val_loss": val_loss})
        if val_loss < best[0]:
            best = (val_loss, {k: v.detach().clone() for k, v in model.state_dict().items()}, epoch)
        bar.set_postfix(val_loss=f"{val_loss:.4g}", best=best[2])
        bar.update(1)
        if epoch - best[2] >= config.patience:
            break
    bar.close()
    seconds = time.perf_counter() - started
    model.load_state_dict(best[1])
    model.eval()

    te = splits.test
    pred = predict_numpy(model, data.normalize_x(te.x, norm), lengths=te.lengths)
    if spec.head != "classification":
        pred = data.denormalize_y(pred, norm)
    if transform is not None:  # back to data units, scored against the raw targets
        pred, te = invert_outputs(transform, pred, test_context).astype(np.float32), raw_test
    baselines = baseline_metrics(spec.head, raw_train.y, te.y, spec.output_size)
    if spec.head == "forecast":
        baselines.update(forecast_baselines(te.x, te.y, horizon=source.horizon, season=source.season or tr.season))
    test_metrics = task_metrics(spec.head, te.y, pred, spec.output_size)
    metrics = {
        "task": source.label,
        "head": spec.head,
        "scored_on": scored_on,
        "test": test_metrics,
        "baselines": baselines,
        "verdict": verdict(test_metrics, baselines) if spec.head == "forecast" else "",
        "best_epoch": best[2],
        "epochs_run": len(history),
        "train_seconds": round(seconds, 2),
        "parameters": spec.parameter_count(),
        "samples": {"train": tr.n, "val": splits.val.n, "test": te.n},
        "notes": list(tr.notes) + picked,
        "config": {"batch_size": config.batch_size, "patience": config.patience, "epochs": config.epochs},
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
        atomic_write_text(tmp / "metrics.json", json.dumps(metrics, indent=2) + "\n")
        from edgernn import plots

        plots.loss_curve(history, tmp / "loss.png")
        if spec.head == "classification" and te.n:
            plots.confusion(te.y, pred.argmax(axis=1), spec.labels or tuple(map(str, range(spec.output_size))),
                            tmp / "confusion.png")
        elif te.n:
            plots.prediction_vs_truth(te.y, pred, tmp / "predictions.png", title=source.label)
    return TrainResult(spec=spec, weights=weights, run_dir=Path(out), metrics=metrics, history=history)


def _progress(total: int, enabled: bool, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="epoch", disable=not enabled, leave=False)


def check_config(config: TrainConfig) -> None:
    open_or_positive = all(v is None or v >= 1 for v in (config.batch_size, config.patience, config.epochs))
    if config.hidden_size < 1 or config.num_layers < 1 or not open_or_positive:
        raise BadInputError("hidden size, layers, epochs, batch size and patience must be positive integers")
    if not 0.0 <= config.dropout < 1.0:
        raise BadInputError(f"dropout must be in [0, 1), got {config.dropout}")
