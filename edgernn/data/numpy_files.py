"""Reading ``.npy`` and ``.npz`` files that may be hostile: never unpickle, never trust a header.

A ``.npy`` header states a shape and a dtype; a damaged or malicious one can claim terabytes. Before
anything is allocated, the bytes the header claims are checked against the bytes the file (or the
``.npz`` member) really holds. Object arrays (pickles) are refused. Every problem is one
``BadInputError`` line naming the file (and member).
"""

from __future__ import annotations

import io
import math
import zipfile
from pathlib import Path

import numpy as np

from edgernn.errors import BadInputError

NPY_MAGIC = b"\x93NUMPY"
DEFLATE_MAX_RATIO = 1100  # deflate cannot expand data by more than about 1032:1


def _pickled(source: str, suffix: str, dtypes: str) -> BadInputError:
    return BadInputError(f"{source}: expected a NumPy {suffix} file of plain arrays, got pickled Python objects or "
                         f"another format; save with numpy.save/savez and {dtypes}")


HEADER_BYTES = 65536 + 12  # numpy itself refuses headers longer than 10,000 bytes


def check_npy_header(head: bytes, available: int, source: str, suffix: str, dtypes: str) -> None:
    """Parse the header at the start of ``head`` (the first bytes of a file of ``available`` bytes); refuse
    object dtypes (pickles), and a claimed array larger than the bytes that follow the header."""
    f = io.BytesIO(head)
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f"format version {version[0]}.{version[1]} is not one this reader takes (1.0, 2.0)")
    except (ValueError, EOFError, SyntaxError, RecursionError, TypeError, MemoryError) as e:
        raise BadInputError(f"{source}: not a valid {suffix} file: {' '.join(str(e).split())[:160]}") from None
    if dtype.hasobject:
        raise _pickled(source, suffix, dtypes)
    claimed = math.prod(shape) * dtype.itemsize
    held = available - f.tell()
    if claimed > held:
        raise BadInputError(f"{source}: the header claims an array of shape {tuple(shape)} ({claimed} bytes) but "
                            f"the file holds {max(held, 0)}; it is truncated or damaged")


def _read_npy(p: Path, source: str, dtypes: str) -> np.ndarray:
    size = p.stat().st_size
    with open(p, "rb") as f:
        check_npy_header(f.read(HEADER_BYTES), size, source, p.suffix, dtypes)
    try:
        return np.load(p, allow_pickle=False)
    except (ValueError, OSError, EOFError, MemoryError) as e:
        raise BadInputError(f"{source}: not a valid {p.suffix} file: {str(e)[:160]}") from None


class NpzArchive:
    """A ``.npz`` whose members are checked one by one when read: ``archive.files``, ``archive["x"]``."""

    def __init__(self, p: Path, source: str, dtypes: str):
        self.source, self.dtypes, self.suffix = source, dtypes, p.suffix
        try:
            self.zip = zipfile.ZipFile(p)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
            raise BadInputError(f"{source}: not a valid {p.suffix} file: {str(e)[:160]}") from None
        self.members = {name[:-4] if name.endswith(".npy") else name: name for name in self.zip.namelist()}
        self.files = list(self.members)

    def __contains__(self, key: str) -> bool:
        return key in self.members

    def __enter__(self) -> "NpzArchive":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.zip.close()

    def __getitem__(self, key: str) -> np.ndarray:
        where = f"{self.source} (array {key!r})"
        info = self.zip.getinfo(self.members[key])
        ratio = 1 if info.compress_type == zipfile.ZIP_STORED else DEFLATE_MAX_RATIO
        if info.file_size > info.compress_size * ratio + 1024:
            raise BadInputError(f"{where}: the archive claims {info.file_size} bytes from {info.compress_size} "
                                "stored; it is damaged")
        try:
            with self.zip.open(info) as member:
                head = member.read(HEADER_BYTES)
            if not head.startswith(NPY_MAGIC):
                raise _pickled(where, self.suffix, self.dtypes)
            check_npy_header(head, info.file_size, where, self.suffix, self.dtypes)
            data = self.zip.read(info)
            return np.load(io.BytesIO(data), allow_pickle=False)
        except BadInputError:
            raise
        except (zipfile.BadZipFile, ValueError, OSError, EOFError, MemoryError, NotImplementedError) as e:
            raise BadInputError(f"{where}: cannot be read, the member is damaged or truncated: {str(e)[:160]}") from None


def load_numpy(p: Path, source: str, dtypes: str = "a numeric dtype"):
    """An array (.npy) or a checked archive (.npz, as ``NpzArchive``); never unpickles, never over-allocates."""
    p = Path(p)
    try:
        with open(p, "rb") as f:
            magic = f.read(len(NPY_MAGIC))
    except PermissionError:
        raise BadInputError(f"{source}: permission denied; make the file readable") from None
    except OSError as e:
        raise BadInputError(f"{source}: cannot read it ({e.strerror or e})") from None
    if magic.startswith(b"PK"):
        return NpzArchive(p, source, dtypes)
    if magic == NPY_MAGIC:
        return _read_npy(p, source, dtypes)
    raise _pickled(source, p.suffix, dtypes)
