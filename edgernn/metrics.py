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


def baseline_metrics(head: str, y_train: np.ndarray, y_test: np.ndarray,
                     num_classes: int = 0) -> dict[str, dict[str, float]]:
    """Trivial predictors to beat: the training mean or majority class (forecasting adds persistence and
    seasonal naive: ``forecast_baselines``)."""
    n = len(y_test)
    if head == "classification":
        majority = np.bincount(np.asarray(y_train, np.int64), minlength=num_classes).argmax()
        return {"majority class": classification_metrics(y_test, np.full(n, majority), num_classes)}
    mean = np.asarray(y_train, np.float64).reshape(len(y_train), -1).mean(axis=0)
    return {"training mean": regression_metrics(y_test, np.tile(mean, (n, 1)))}


def forecast_baselines(x: np.ndarray, y: np.ndarray, *, horizon: int = 1,
                       season: int | None = None) -> dict[str, dict[str, float]]:
    """What a forecaster must beat, on windows ``x`` (N, T, F) in data units and targets ``y`` (N, O):
    persistence (the last value of the window) and, given the season length m, seasonal naive (the
    value m steps before the target, k·m when the horizon is longer than a season).
    Targets are the window's first O features, as ``edgernn.data.windowing`` makes them."""
    out_size = y.shape[1]
    if x.shape[2] < out_size or len(x) == 0:
        return {}
    out = {"persistence": regression_metrics(y, x[:, -1, :out_size])}
    if season:
        back = season * ((horizon - 1) // season + 1)  # steps from the target back to the same phase
        index = x.shape[1] - 1 + horizon - back
        if 0 <= index < x.shape[1]:
            out[f"seasonal naive (m={season})"] = regression_metrics(y, x[:, index, :out_size])
    return out


def beats(metrics: dict[str, float], baselines: dict[str, dict[str, float]], name: str = "persistence") -> bool | None:
    """Whether a forecaster's MSE is below the named baseline's (None when that baseline was not computed)."""
    if name not in baselines:
        return None
    return metrics["mse"] < baselines[name]["mse"]


def verdict(metrics: dict[str, float], baselines: dict[str, dict[str, float]]) -> str:
    """One plain sentence on how a forecaster compares with persistence (and seasonal naive)."""
    if "persistence" not in baselines:
        return ""
    p = baselines["persistence"]["mse"]
    seasonal = [(k, v["mse"]) for k, v in baselines.items() if k.startswith("seasonal naive")]
    ratio = f" ({metrics['mse'] / p:.2f}×)" if p > 0 else " (persistence is exact on this data)"
    if metrics["mse"] >= p:
        return (f"the model does NOT beat persistence (last value): MSE {metrics['mse']:.4g} vs {p:.4g}{ratio}; "
                "a device would do better repeating the last value")
    text = f"the model beats persistence: MSE {metrics['mse']:.4g} vs {p:.4g}{ratio}"
    for name, mse in seasonal:
        text += f"; {'beats' if metrics['mse'] < mse else 'does NOT beat'} {name}: MSE {mse:.4g}"
    return text
