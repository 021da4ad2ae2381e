"""What the training loop reads: normalised (x, y) batches from an in-memory or a memory-mapped data set.

Both kinds return whole batches from ``__getitems__`` (one fancy index per batch, not one lookup
per sample). ``TensorBatches`` normalises the data once up front; ``LazyBatches`` reads and
normalises each batch when the loader asks for it, so memory holds batches, not the data set.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from edgernn import data
from edgernn.data.lazy import LazyDataset
from edgernn.spec import Normalization


class TensorBatches(torch.utils.data.Dataset):
    """In-memory (x, y) tensors, already normalised; with ``lengths`` (variable-length sequences,
    right-padded) batches are (x, y, lengths)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, lengths: torch.Tensor | None = None):
        self.x, self.y, self.lengths = x, y, lengths

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], self.y[i]

    def __getitems__(self, indices):
        index = torch.as_tensor(indices, dtype=torch.long, device=self.x.device)
        if self.lengths is None:
            return self.x[index], self.y[index]
        return self.x[index], self.y[index], self.lengths[index.cpu()]  # lengths stay on the CPU (packing)

    def to(self, device: torch.device) -> "TensorBatches":
        return TensorBatches(self.x.to(device), self.y.to(device), self.lengths)


class LazyBatches(torch.utils.data.Dataset):
    """Windows of a ``LazyDataset`` read from the mapped file and normalised per batch."""

    def __init__(self, ds: LazyDataset, norm: Normalization):
        self.ds, self.norm = ds, norm

    def __len__(self) -> int:
        return self.ds.n

    def __getitem__(self, i):
        x, y = self.__getitems__([i])
        return x[0], y[0]

    def __getitems__(self, indices):
        index = np.asarray(indices, np.int64)
        x = data.normalize_x(self.ds.x.take(index), self.norm)  # (B, T, F)
        return torch.from_numpy(x), targets(self.ds.head, np.asarray(self.ds.y[index]), self.norm)


def targets(head: str, y: np.ndarray, norm: Normalization) -> torch.Tensor:
    if head == "classification":
        return torch.from_numpy(y.astype(np.int64))
    return torch.from_numpy(data.normalize_y(y, norm).astype(np.float32))


def batches_for(ds, norm: Normalization) -> torch.utils.data.Dataset:
    if isinstance(ds, LazyDataset):
        return LazyBatches(ds, norm)
    lengths = getattr(ds, "lengths", None)
    return TensorBatches(torch.from_numpy(data.normalize_x(ds.x, norm)), targets(ds.head, ds.y, norm),
                         None if lengths is None else torch.from_numpy(np.asarray(lengths, np.int64)))


def predict_dataset(model: nn.Module, ds, norm: Normalization, batch_size: int = 512,
                    device: torch.device | None = None) -> np.ndarray:
    """The model's fp32 outputs for every window of ``ds`` (normalised inputs, outputs in model units),
    computed on ``device`` (default: where the model is); the model is left where it was."""
    home = next(model.parameters()).device
    device = device or home
    model.to(device).eval()
    outs = []
    try:
        with torch.no_grad():
            lengths = getattr(ds, "lengths", None)
            for start in range(0, ds.n, batch_size):
                x = data.normalize_x(np.asarray(ds.x[start : start + batch_size]), norm)
                part = None if lengths is None else torch.from_numpy(np.asarray(lengths[start : start + batch_size],
                                                                                np.int64))
                outs.append(model(torch.from_numpy(x).to(device), part).cpu().numpy())
    finally:
        model.to(home)
    return np.concatenate(outs) if outs else np.zeros((0,), np.float32)


def baseline_train_targets(ds, norm: Normalization) -> np.ndarray:
    """``y`` of the training split for the baselines; for a mapped regression or forecast its mean
    row (all the "training mean" baseline uses), which the streaming pass already measured."""
    if isinstance(ds, LazyDataset) and ds.head != "classification":
        return np.asarray([norm.y_mean], np.float64)  # (1, O)
    return ds.y
