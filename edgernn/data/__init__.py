"""Datasets, readers, windowing and normalisation: NumPy only, as the device runtime imports it.

- ``datasets``: ``Dataset``, ``Splits`` and ``split``.
- ``builtin``: synthetic tasks (``BUILTIN_TASKS``, ``make_builtin``).
- ``readers``: ``load_data`` for .csv/.tsv, .npy/.npz and UCR/UEA .ts files.
- ``inputs``: ``load_inputs``, the windows ``edgernn run --input`` predicts on.
- ``normalize``: per-feature normalisation fitted on the training split.
"""

from edgernn.data.builtin import BUILTIN_TASKS, make_builtin
from edgernn.data.datasets import Dataset, Splits, split
from edgernn.data.inputs import load_inputs
from edgernn.data.normalize import denormalize_y, fit_normalization, normalize_x, normalize_y
from edgernn.data.readers import load_data

__all__ = [
    "BUILTIN_TASKS",
    "Dataset",
    "Splits",
    "denormalize_y",
    "fit_normalization",
    "load_data",
    "load_inputs",
    "make_builtin",
    "normalize_x",
    "normalize_y",
    "split",
]
