"""Plots written next to results (matplotlib, headless)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edgernn.bundle import atomic_write_bytes
from edgernn.errors import BadInputError
from edgernn.metrics import confusion_matrix


def save_figure(fig, path: Path) -> None:
    """Render, then write atomically: an unwritable path or an unknown image type is one line, and no
    half-written image is left behind."""
    buffer = io.BytesIO()
    kind = Path(path).suffix.lower().lstrip(".") or "png"
    try:
        fig.savefig(buffer, format=kind)
    except ValueError as e:
        raise BadInputError(f"{path}: cannot write a plot of this type ({' '.join(str(e).split())[:120]})") from None
    atomic_write_bytes(Path(path), buffer.getvalue())


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def loss_curve(history: Sequence[dict], path: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=110)
    epochs = [h["epoch"] for h in history]
    ax.plot(epochs, [h["train_loss"] for h in history], label="train")
    ax.plot(epochs, [h["val_loss"] for h in history], label="validation")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def prediction_vs_truth(y_true: np.ndarray, y_pred: np.ndarray, path: Path, title: str = "") -> None:
    plt = _plt()
    t, p = np.asarray(y_true)[:, 0], np.asarray(y_pred)[:, 0]
    fig, ax = plt.subplots(figsize=(4, 4), dpi=110)
    ax.scatter(t, p, s=6, alpha=0.5)
    lo, hi = float(min(t.min(), p.min())), float(max(t.max(), p.max()))
    ax.plot([lo, hi], [lo, hi], color="k", lw=0.8)
    ax.set_xlabel("truth")
    ax.set_ylabel("prediction")
    ax.set_title(f"{title}: test split" if title else "test split")
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def confusion(y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[str], path: Path) -> None:
    """Confusion matrix: rows are true classes, coloured by the share of the row; each cell shows its
    count and that share, in a colour readable on the cell."""
    plt = _plt()
    K = len(labels)
    cm = confusion_matrix(y_true, y_pred, K)
    share = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)  # (K, K): each row sums to 1
    side = max(4.2, 0.75 * K + 2.2)
    fig, ax = plt.subplots(figsize=(side + 1.0, side), dpi=110)
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    fontsize = 9 if K <= 8 else 7 if K <= 14 else 5
    for i in range(K):
        for j in range(K):
            colour = "white" if share[i, j] > 0.55 else "black"
            text = f"{cm[i, j]}\n{100 * share[i, j]:.0f}%" if K <= 14 else str(cm[i, j])
            ax.text(j, i, text, ha="center", va="center", fontsize=fontsize, color=colour)
    ax.set_xticks(range(K), labels, rotation=45 if max(map(len, labels)) > 3 else 0, ha="right")
    ax.set_yticks(range(K), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    accuracy = np.trace(cm) / max(cm.sum(), 1)
    ax.set_title(f"test split: accuracy {100 * accuracy:.1f}% ({cm.sum()} windows)", fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
