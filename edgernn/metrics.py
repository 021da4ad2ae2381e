"""Task metrics in NumPy: what "accurate" means for each head, and the trivial baselines."""

from __future__ import annotations

import numpy as np

# The metric each head is judged by, and whether higher is better.
PRIMARY_METRIC = {"classification": ("accuracy", True), "regression": ("mse", False), "forecast": ("mse", False)}


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    y_true = np.asarray(y_true, np.float64).reshape(len(y_true), -1)
    y_pred = np.asarray(y_pred, np.float64).reshape(len(y_pred), -1)
    err = y_pred - y_true
    total = ((y_true - y_true.mean(axis=0)) ** 2).sum()
    return {
        "mse": float((err**2).mean()),
        "mae": float(np.abs(err).mean()),
        "r2": float(1.0 - (err**2).sum() / total) if total > 0 else float("nan"),
    }


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> dict[str, float]:
    """Accuracy and macro-F1 from class indices."""
    y_true = np.asarray(y_true).astype(np.int64).ravel()
    y_pred = np.asarray(y_pred).astype(np.int64).ravel()
    f1s = []
    for k in range(num_classes):
        tp = np.sum((y_pred == k) & (y_true == k))
        fp = np.sum((y_pred == k) & (y_true != k))
        fn = np.sum((y_pred != k) & (y_true == k))
        f1s.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return {"accuracy": float(np.mean(y_true == y_pred)), "macro_f1": float(np.mean(f1s))}


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    cm = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(cm, (np.asarray(y_true, np.int64).ravel(), np.asarray(y_pred, np.int64).ravel()), 1)
    return cm


def task_metrics(head: str, y_true: np.ndarray, prediction: np.ndarray, num_classes: int = 0) -> dict[str, float]:
    """Metrics of a prediction: class indices (or logits/probabilities) for classifiers, values otherwise."""
    if head == "classification":
        pred = np.asarray(prediction)
        if pred.ndim == 2:
            pred = pred.argmax(axis=1)
        return classification_metrics(y_true, pred, num_classes)
    return regression_metrics(y_true, prediction)


def baseline_metrics(head: str, y_train: np.ndarray, y_test: np.ndarray, num_classes: int = 0,
                     last_values: np.ndarray | None = None) -> dict[str, dict[str, float]]:
    """Trivial predictors to beat: the training mean or majority class; for forecasting also
    persistence (predict the last seen value), given ``last_values`` of shape (N, O)."""
    n = len(y_test)
    if head == "classification":
        majority = np.bincount(np.asarray(y_train, np.int64), minlength=num_classes).argmax()
        return {"majority class": classification_metrics(y_test, np.full(n, majority), num_classes)}
    mean = np.asarray(y_train, np.float64).reshape(len(y_train), -1).mean(axis=0)
    out = {"training mean": regression_metrics(y_test, np.tile(mean, (n, 1)))}
    if head == "forecast" and last_values is not None:
        out["persistence"] = regression_metrics(y_test, last_values)
    return out
