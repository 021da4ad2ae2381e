"""The epoch loop: one device or many (DDP), fp32 or autocast, resumable, with a progress bar.

Batches come from a ``DataLoader`` over a dataset that returns whole batches (``__getitems__``),
in the order ``ShardedShuffle`` gives: each epoch one shuffled order of the whole training split,
the same on every rank (epoch e's order is the e-th ``randperm`` of a generator seeded with
``seed``, the order single-process training has always used). With W processes, each takes every
W-th sample of that order, as ``DistributedSampler`` deals them, and ``--batch-size`` is the global
batch (B / W per process), so W processes make the same optimizer steps as one process: the global
batch k is the same set of samples, and DDP's gradient average over ranks equals the single
process's mean. (When the training split is not a multiple of W, up to W - 1 samples per epoch are
repeated to even the shares, as DistributedSampler does.)

Validation and train losses are sums over samples reduced over ranks, so every rank sees the same
figures; rank 0 decides early stopping and broadcasts it; only rank 0 writes ``resume.pt``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgernn.errors import BadInputError
from edgernn.nn.device import Precision
from edgernn.nn.distributed import World
from edgernn.nn.resume import EarlyStopping, ResumeState, capture_rng, cpu_state, restore_rng, save_resume


class ShardedShuffle(torch.utils.data.Sampler):
    """This rank's share of each epoch's shuffled order; ``set_epoch`` before each epoch."""

    def __init__(self, n: int, world: World, seed: int):
        self.n, self.world, self.seed, self.epoch = n, world, seed, 1
        self.per_rank = -(-n // world.size)  # ceil: every rank gets as many samples
        self._generator, self._drawn, self._order = None, 0, None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def order(self) -> torch.Tensor:
        """Epoch e's order: the e-th permutation drawn (replayed after a resume; O(N) per epoch skipped)."""
        if self._generator is None or self._drawn > self.epoch:
            self._generator, self._drawn = torch.Generator().manual_seed(self.seed), 0
        while self._drawn < self.epoch:
            self._order = torch.randperm(self.n, generator=self._generator)
            self._drawn += 1
        return self._order

    def __iter__(self):
        order = self.order()
        padded = self.per_rank * self.world.size
        if padded > self.n:
            order = torch.cat([order, order[: padded - self.n]])
        return iter(order[self.world.rank :: self.world.size].tolist())

    def __len__(self) -> int:
        return self.per_rank


def _whole_batch(batch):
    return batch  # __getitems__ already returns (x, y) batches


@dataclass
class FitOutcome:
    best: EarlyStopping
    history: list[dict[str, float]]
    epochs_run: int
    train_seconds: float  # all sessions of this run, resumed ones included
    throughput: dict[str, float] = field(default_factory=dict)  # this session
    stopped_early: bool = False


@dataclass(frozen=True)
class FitSettings:
    epochs: int
    batch_size: int  # global, over all processes
    lr: float
    patience: int
    seed: int
    workers: int = 0
    clip_norm: float = 1.0


def loss_for(head: str, reduction: str = "mean") -> nn.Module:
    return nn.CrossEntropyLoss(reduction=reduction) if head == "classification" else nn.MSELoss(reduction=reduction)


def make_loader(dataset, batch_size: int, world: World, *, seed: int, shuffle: bool, workers: int,
                device: torch.device) -> torch.utils.data.DataLoader:
    if shuffle:
        sampler = ShardedShuffle(len(dataset), world, seed)
    else:  # evaluation: every sample exactly once over all ranks, no padding
        sampler = range(world.rank, len(dataset), world.size)
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                                       collate_fn=_whole_batch, pin_memory=device.type == "cuda" and workers > 0,
                                       persistent_workers=workers > 0)


def fit(model: nn.Module, train_data, val_data, head: str, settings: FitSettings, *, device: torch.device,
        precision: Precision, world: World, run_dir: Path | None = None, run_info: dict[str, Any] | None = None,
        resume: ResumeState | None = None, progress: bool = False, desc: str = "train") -> FitOutcome:
    """Train ``model`` in place; return the early-stopping state (best weights on CPU) and history."""
    if settings.batch_size % world.size:
        raise BadInputError(f"--batch-size {settings.batch_size} is the global batch and must be a multiple of "
                            f"the {world.size} processes")
    local_batch = settings.batch_size // world.size
    model.to(device)
    net = model
    if world.active:
        ids = [device.index] if device.type == "cuda" else None
        net = nn.parallel.DistributedDataParallel(model, device_ids=ids)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    scaler = precision.grad_scaler()
    best, history, start_epoch, seconds_before = EarlyStopping(), [], 1, 0.0
    if resume is not None:
        model.load_state_dict(resume.model)
        optimizer.load_state_dict(resume.optimizer)
        if resume.scaler and scaler.is_enabled():
            scaler.load_state_dict(resume.scaler)
        restore_rng(resume.rng)
        best, history = resume.best, list(resume.history)
        start_epoch, seconds_before = resume.epoch + 1, resume.train_seconds

    if device.type == "cuda" and settings.workers == 0:  # in-memory data: batches indexed on the GPU itself
        train_data, val_data = (d.to(device) if hasattr(d, "to") else d for d in (train_data, val_data))
    train_loader = make_loader(train_data, local_batch, world, seed=settings.seed, shuffle=True,
                               workers=settings.workers, device=device)
    val_loader = make_loader(val_data, max(local_batch, 256), world, seed=settings.seed, shuffle=False,
                             workers=settings.workers, device=device)
    loss_mean, loss_sum = loss_for(head), loss_for(head, "sum")
    already_stopped = resume is not None and resume.epoch - best.epoch >= settings.patience
    epochs = range(start_epoch, settings.epochs + 1) if not already_stopped else range(0)
    bar = _progress(len(epochs) * len(train_data), progress and world.is_main, desc)
    samples, step_seconds, started, stopped = 0, 0.0, time.perf_counter(), already_stopped
    steady = [0, 0.0]  # samples and step seconds after the first epoch of this session (no warm-up)
    try:
        for epoch in epochs:
            train_loader.sampler.set_epoch(epoch)
            net.train()
            total = torch.zeros((), dtype=torch.float64, device=device)
            count = 0
            t0 = time.perf_counter()
            for x, y, *lengths in train_loader:  # lengths: variable-length sequences, packed by the model
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                optimizer.zero_grad(set_to_none=True)
                with precision.autocast():
                    out = net(x, *lengths)
                loss = loss_mean(out.float(), y)
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), settings.clip_norm)
                scaler.step(optimizer)
                scaler.update()
                total += loss.detach().double() * y.numel()
                count += y.numel()
                bar.update(len(x) * world.size)
            local_total = total.item()  # waits for the device: the epoch's steps are done
            epoch_seconds, epoch_samples = time.perf_counter() - t0, _epoch_samples(train_loader) * world.size
            if epoch > epochs.start:
                steady[0], steady[1] = steady[0] + epoch_samples, steady[1] + epoch_seconds
            step_seconds += epoch_seconds
            samples += epoch_samples
            train_total, train_count = world.sum([local_total, float(count)], device)
            val_loss = evaluate(model, val_loader, loss_sum, device, precision, world)
            history.append({"epoch": epoch, "train_loss": train_total / max(train_count, 1.0), "val_loss": val_loss})
            best.update(val_loss, epoch, model)
            stopped = world.decide(epoch - best.epoch >= settings.patience, device)
            bar.set_postfix(epoch=epoch, val_loss=f"{val_loss:.4g}", best=best.epoch)
            elapsed = seconds_before + time.perf_counter() - started
            if world.is_main and run_dir is not None:
                save_resume(run_dir, ResumeState(
                    epoch=epoch, model=model.state_dict(), optimizer=optimizer.state_dict(),
                    scaler=scaler.state_dict() if scaler.is_enabled() else {}, best=best, history=history,
                    rng=capture_rng(), run=run_info or {}, train_seconds=elapsed))
            if stopped:
                break
    finally:
        bar.close()
    session = time.perf_counter() - started
    throughput = {
        "samples_per_s": round(samples / session, 1) if session > 0 and samples else 0.0,
        "step_samples_per_s": round(samples / step_seconds, 1) if step_seconds > 0 and samples else 0.0,
        "steady_samples_per_s": round(steady[0] / steady[1], 1) if steady[1] > 0 else None,  # epochs 2+
        "samples": samples,
        "seconds": round(session, 3),
    }
    if best.state is None:  # resumed a run whose every epoch was done: keep the last weights
        best.state = cpu_state(model.state_dict())
    return FitOutcome(best=best, history=history, epochs_run=len(history),
                      train_seconds=seconds_before + session, throughput=throughput, stopped_early=stopped)


def _epoch_samples(loader) -> int:
    return len(loader.sampler)  # this rank's samples per epoch (ranks are padded equal)


def evaluate(model: nn.Module, loader, loss_sum: nn.Module, device: torch.device, precision: Precision,
             world: World) -> float:
    """Mean loss over every sample of ``loader``'s data, the same figure on every rank."""
    model.eval()
    total = torch.zeros((), dtype=torch.float64, device=device)
    count = 0
    with torch.no_grad():
        for x, y, *lengths in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with precision.autocast():
                out = model(x, *lengths)
            total += loss_sum(out.float(), y).double()
            count += y.numel()
    summed, counted = world.sum([total.item(), float(count)], device)
    return summed / counted if counted else float("nan")


def _progress(total: int, enabled: bool, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="sample", unit_scale=True, disable=not enabled, leave=False,
                dynamic_ncols=True)
