"""Arrays read memory-mapped from ``.npy`` and ``.npz`` files, and windows cut from them on demand.

``open_npy`` maps a ``.npy`` file (``np.load(mmap_mode="r")``, never unpickling). A ``.npz`` is a
zip archive: NumPy cannot map its members, but a member saved with ``numpy.savez`` (stored, not
compressed) is a plain ``.npy`` at a known offset inside the archive, which ``open_npz_member``
maps in place. A compressed member (``savez_compressed``) is first extracted to a temporary file,
mapped, and the file unlinked (the mapping stays valid); the returned note says so.

``LazyWindows`` looks like an (N, T, F) float32 array but reads only the rows it is indexed with.
"""

from __future__ import annotations

import os
import shutil
import struct
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from edgernn.errors import BadInputError

_LOCAL_HEADER = 30  # bytes of a zip local file header before its name and extra field


def open_npy(p: Path, source: str) -> np.ndarray:
    try:
        array = np.load(p, mmap_mode="r", allow_pickle=False)
    except ValueError as e:
        raise BadInputError(f"{source}: expected a NumPy .npy file of plain numbers, got another format ({e})") from None
    except (OSError, EOFError) as e:
        raise BadInputError(f"{source}: not a valid .npy file: {e}") from None
    return _checked_numeric(array, source, "values")


def npz_members(p: Path, source: str) -> list[str]:
    try:
        with zipfile.ZipFile(p) as z:
            return [n[:-4] for n in z.namelist() if n.endswith(".npy")]
    except zipfile.BadZipFile as e:
        raise BadInputError(f"{source}: not a valid .npz file: {e}") from None


def open_npz_member(p: Path, name: str, source: str) -> tuple[np.ndarray, str | None]:
    """Member ``name`` of the archive, memory-mapped; and a note when it had to be extracted first."""
    with zipfile.ZipFile(p) as z:
        info = z.getinfo(f"{name}.npy")
        if info.compress_type == zipfile.ZIP_STORED:
            return _map_stored_member(p, info, f"{source}:{name}"), None
        with z.open(info) as member, tempfile.NamedTemporaryFile(suffix=".npy", delete=False) as tmp:
            shutil.copyfileobj(member, tmp, length=1 << 22)
    try:
        array = open_npy(Path(tmp.name), f"{source}:{name}")
    finally:
        os.unlink(tmp.name)  # the mapping keeps the data until it is closed
    return array, (f"'{name}' is compressed in {Path(source).name}; extracted it to a temporary file to map it "
                   "(save with numpy.savez, not savez_compressed, to map it in place)")


def _map_stored_member(p: Path, info: zipfile.ZipInfo, source: str) -> np.ndarray:
    with open(p, "rb") as f:
        f.seek(info.header_offset)
        header = f.read(_LOCAL_HEADER)
        name_length, extra_length = struct.unpack("<HH", header[26:30])
        f.seek(info.header_offset + _LOCAL_HEADER + name_length + extra_length)
        try:
            version = np.lib.format.read_magic(f)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                np.lib.format.read_array_header_2_0
            shape, fortran_order, dtype = read_header(f)
        except ValueError as e:
            raise BadInputError(f"{source}: not a valid .npy member: {e}") from None
        offset = f.tell()
    if dtype.hasobject:
        raise BadInputError(f"{source}: expected plain numbers, got pickled Python objects; save with numpy.savez")
    array = np.memmap(p, dtype=dtype, mode="r", shape=shape, order="F" if fortran_order else "C", offset=offset)
    return _checked_numeric(array, source, "values")


def _checked_numeric(array: np.ndarray, source: str, what: str) -> np.ndarray:
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise BadInputError(f"{source}: expected numeric {what}, got dtype {array.dtype}")
    return array


class LazyWindows:
    """(N, T, F) float32 windows read on demand from a mapped array.

    Either a series (L, F) cut into windows ``[start_i, start_i + T)`` with ``start_i =
    (first + i) * stride``, or cases (M, T, F) of which the rows ``rows`` are selected.
    """

    ndim = 3
    dtype = np.dtype(np.float32)

    def __init__(self, source: np.ndarray, *, window: int, stride: int = 1, first: int = 0, count: int | None = None,
                 rows: np.ndarray | None = None):
        self.source, self.window, self.stride = source, window, stride
        self.series = rows is None
        self.first, self.rows = first, rows
        self.count = int(count) if self.series else len(rows)
        features = source.shape[-1] if source.ndim == (2 if self.series else 3) else 1
        self.shape = (self.count, window, features)

    def __len__(self) -> int:
        return self.count

    def starts(self, index: np.ndarray) -> np.ndarray:
        return (self.first + np.asarray(index, np.int64)) * self.stride

    def take(self, index) -> np.ndarray:
        """Windows ``index`` (positions in this split) as a float32 (B, T, F) array."""
        index = np.asarray(index, np.int64)
        if self.series:
            steps = self.starts(index)[:, None] + np.arange(self.window)  # (B, T)
            return np.asarray(self._series_rows(steps), np.float32)
        return np.asarray(self.source[self.rows[index]], np.float32).reshape(len(index), *self.shape[1:])

    def step(self, index, t: int) -> np.ndarray:
        """Step ``t`` of windows ``index``: (B, F), reading one row per window."""
        index = np.asarray(index, np.int64)
        t = t % self.window
        if self.series:
            return np.asarray(self._series_rows(self.starts(index) + t), np.float32)
        picked = self.source[self.rows[index]]  # (B, T, F) or (B, T)
        return np.asarray(picked[:, t], np.float32).reshape(len(index), -1)

    def _series_rows(self, steps: np.ndarray) -> np.ndarray:
        values = self.source[steps]  # (..., F) or (...) for a 1-D series
        return values if self.source.ndim == 2 else values[..., None]

    def __getitem__(self, key):
        rest = ()
        if isinstance(key, tuple):
            key, rest = key[0], key[1:]
        if isinstance(key, (int, np.integer)):
            return self[(np.array([key]),) + rest][0]
        index = np.arange(self.count)[key] if isinstance(key, slice) else np.asarray(key)
        if rest and isinstance(rest[0], (int, np.integer)):
            return self.step(index, int(rest[0]))[(slice(None), *rest[1:])]
        return self.take(index)[(slice(None), *rest)]

    def __array__(self, dtype=None, copy=None):
        """Reads every window: only for data known to be small."""
        return self.take(np.arange(self.count)).astype(dtype or np.float32, copy=False)

    def chunks(self, size: int):
        for start in range(0, self.count, size):
            yield start, self.take(np.arange(start, min(start + size, self.count)))
