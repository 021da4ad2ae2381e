"""Checks shared by the readers: the file exists and has a known extension; arrays are numeric and finite."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgernn.data.numpy_files import load_numpy  # noqa: F401  (re-exported: the readers' one NumPy loader)
from edgernn.errors import BadInputError


def require_file(path: str | Path, *, extensions: tuple[str, ...]) -> Path:
    """Return ``path`` as a Path if it is a non-empty file with one of ``extensions``."""
    p = Path(path)
    if not p.exists():
        raise BadInputError(f"{path}: no such file; check the path")
    if not p.is_file():
        raise BadInputError(f"{path}: expected a file, got a directory")
    if p.suffix.lower() not in extensions:
        raise BadInputError(
            f"{path}: expected one of {', '.join(extensions)}, got extension {p.suffix or '(none)'!r}; "
            "convert the file or rename it"
        )
    if p.stat().st_size == 0:
        raise BadInputError(f"{path}: file is empty")
    try:
        open(p, "rb").close()
    except PermissionError:
        raise BadInputError(f"{path}: permission denied; make the file readable") from None
    except OSError as e:
        raise BadInputError(f"{path}: cannot read it ({e.strerror or e})") from None
    return p


def require_numeric(array: np.ndarray, source: str, what: str) -> np.ndarray:
    """``array`` as float64, or a BadInputError naming its dtype."""
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise BadInputError(f"{source}: expected numeric {what}, got dtype {array.dtype}")
    return array.astype(np.float64)


def require_finite(array: np.ndarray, source: str, what: str) -> None:
    """Raise naming the first NaN/inf in ``array`` by its index."""
    bad = ~np.isfinite(array)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise BadInputError(
            f"{source}: expected finite {what}, got {array[index]} at index {index} "
            f"({int(bad.sum())} NaN/inf in all); fill or drop missing values first"
        )


def require_positive_int(value: object, name: str, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise BadInputError(f"{name} must be a positive integer, got {value!r}")
