"""Plots written next to results (matplotlib, headless)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edgernn.bundle import atomic_write_bytes
from edgernn.errors import BadInputError


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
    from edgernn.metrics import confusion_matrix

    plt = _plt()
    cm = confusion_matrix(y_true, y_pred, len(labels))
    fig, ax = plt.subplots(figsize=(4.2, 3.8), dpi=110)
    ax.imshow(cm, cmap="Blues")
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
