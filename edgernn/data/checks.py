"""Checks shared by the readers: the file exists and has a known extension; arrays are numeric and finite."""

from __future__ import annotations

from pathlib import Path

import numpy as np

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


def load_numpy(p: Path, source: str, dtypes: str = "a numeric dtype"):
    """``np.load`` without pickles: an array (.npy) or an archive (.npz), or one line saying what is wrong."""
    try:
        return np.load(p, allow_pickle=False)
    except ValueError as e:
        if "pickle" in str(e):
            raise BadInputError(
                f"{source}: expected a NumPy {p.suffix} file of plain arrays, got pickled Python objects or "
                f"another format; save with numpy.save/savez and {dtypes}"
            ) from None
        raise BadInputError(f"{source}: not a valid {p.suffix} file: {e}") from None
    except (OSError, EOFError) as e:
        raise BadInputError(f"{source}: not a valid {p.suffix} file: {e}") from None
