"""Class labels as training stores them: names or integers in, class indices and sorted names out."""

from __future__ import annotations

import numpy as np

from edgernn.data.checks import require_finite, require_numeric
from edgernn.data.delimited import is_number
from edgernn.errors import BadInputError


def canonical_label(text: str) -> str:
    """A class name as training stores it: integral numbers without a fraction ("2.0" -> "2")."""
    text = str(text).strip()
    if is_number(text) and np.isfinite(float(text)) and float(text) == round(float(text)):
        return str(int(float(text)))
    return text


def encode_labels(raw: np.ndarray, source: str = "labels", min_classes: int = 2) -> tuple[np.ndarray, tuple[str, ...]]:
    """Class indices (N,) int64 and class names, sorted (numerically when every label is a number)."""
    raw = np.asarray(raw)
    if raw.dtype.kind in "US":
        text = raw.astype(str)
        if all(is_number(v) for v in np.unique(text)):
            raw = text.astype(np.float64)
        else:
            names, y = np.unique(text, return_inverse=True)
            return _checked_classes(y, tuple(str(v) for v in names), source, min_classes)
    values = require_numeric(raw, source, "class labels")
    require_finite(values, source, "class labels")
    fractional = values[values != np.round(values)]
    if fractional.size:
        raise BadInputError(
            f"{source}: expected class labels that are names or integers, got {fractional[0]:g}; "
            "pass --head regression if the target is a quantity"
        )
    distinct, y = np.unique(values, return_inverse=True)
    return _checked_classes(y, tuple(str(int(v)) for v in distinct), source, min_classes)


def _checked_classes(y: np.ndarray, names: tuple[str, ...], source: str,
                     min_classes: int = 2) -> tuple[np.ndarray, tuple[str, ...]]:
    if len(names) < min_classes:
        raise BadInputError(
            f"{source}: expected at least 2 classes, got only {names[0]!r}; a classifier needs examples of each class"
        )
    return y.reshape(-1).astype(np.int64), names
