"""Reader for the UCR/UEA ``.ts`` text format (as written by sktime).

Rules:

- Header lines start with ``@`` (case-insensitive): ``@problemName``, ``@timeStamps``,
  ``@missing``, ``@univariate``, ``@dimensions``, ``@equalLength``, ``@seriesLength``,
  ``@classLabel true a b c`` (classification, class names in the declared order),
  ``@targetLabel true`` (regression), then ``@data``. Unknown tags are ignored; lines starting
  with ``#`` or ``%`` are comments. ``@timeStamps true`` is refused.
- Each case after ``@data`` is one line: dimensions separated by ``:``, each a comma-separated
  series, the last field the class label or target. Every case has the same number of
  dimensions, and within a case every dimension has the same length.
- Cases of different lengths are padded with zeros at the end to the longest, and their true
  lengths are kept (``TsCases.lengths``): training, evaluation and the runtime use those lengths,
  so the padding never reaches the network. The dataset carries a note saying so.
- Missing values (``?`` or NaN) are refused with the line number: fill them first.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgernn.data.delimited import is_number
from edgernn.errors import BadInputError


@dataclass(frozen=True)
class TsCases:
    x: np.ndarray  # (N, T, D) float64, zero-padded at the end
    targets: list[str]  # raw label or target text per case
    head: str  # "classification" | "regression"
    labels: tuple[str, ...]  # declared class names (classification)
    notes: tuple[str, ...]
    lengths: np.ndarray | None = None  # (N,) true lengths when the cases differ in length


def read_ts(path: Path, source: str, *, unlabelled_ok: bool = False) -> TsCases:
    """Cases of a .ts file; ``unlabelled_ok``: a file without targets (inputs to predict) is read too,
    with ``head`` "" and no targets."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise BadInputError(f"{source}: expected UTF-8 text, got binary data; is it really a .ts file?") from None
    lines = text.splitlines()
    tags, data_start = _read_header(lines, source)
    head, labels = _head_from_tags(tags, source, unlabelled_ok)
    cases: list[list[np.ndarray]] = []
    targets: list[str] = []
    case_lines: list[int] = []
    for number, line in enumerate(lines[data_start:], start=data_start + 1):
        line = line.strip()
        if not line or line.startswith(("#", "%")):
            continue
        dims, target = _parse_case(line if head else line + ":", number, source)
        if cases and len(dims) != len(cases[0]):
            raise BadInputError(
                f"{source}: expected {len(cases[0])} dimensions per case (as on line {case_lines[0]}), "
                f"got {len(dims)} on line {number}"
            )
        if head == "classification" and target not in labels:
            raise BadInputError(
                f"{source}: expected a class label declared in @classLabel ({' '.join(labels)}), "
                f"got {target!r} on line {number}"
            )
        if head == "regression" and not is_number(target):
            raise BadInputError(f"{source}: expected a numeric target, got {target!r} on line {number}")
        cases.append(dims)
        targets.append(target)
        case_lines.append(number)
    if not cases:
        raise BadInputError(f"{source}: expected cases after @data, got none")
    _check_declared_dimensions(tags, len(cases[0]), source)
    x, lengths, notes = _stack_padded(cases)
    return TsCases(x, targets, head, labels, notes, lengths)


def _read_header(lines: list[str], source: str) -> tuple[dict[str, list[str]], int]:
    """Tags (lower-case name -> words after it) and the index of the first line after @data."""
    tags: dict[str, list[str]] = {}
    for index, line in enumerate(lines):
        line = line.strip()
        if not line or line.startswith(("#", "%")):
            continue
        if not line.startswith("@"):
            raise BadInputError(
                f"{source}: expected @tags and then @data, got data on line {index + 1} before @data"
            )
        name, *words = line.split()
        name = name.lower()
        if name == "@data":
            return tags, index + 1
        tags[name] = words
    raise BadInputError(f"{source}: expected an @data line, got none; is it really a .ts file?")


def _flag(tags: dict[str, list[str]], name: str) -> bool:
    words = tags.get(name, [])
    return bool(words) and words[0].lower() == "true"


def _head_from_tags(tags: dict[str, list[str]], source: str, unlabelled_ok: bool = False) -> tuple[str, tuple[str, ...]]:
    if _flag(tags, "@timestamps"):
        raise BadInputError(f"{source}: @timeStamps true is not supported; write plain comma-separated values")
    if _flag(tags, "@classlabel"):
        labels = tuple(tags["@classlabel"][1:])
        if len(labels) < 2:
            raise BadInputError(
                f"{source}: expected at least 2 class names after '@classLabel true', got {len(labels)}"
            )
        return "classification", labels
    if _flag(tags, "@targetlabel"):
        return "regression", ()
    if unlabelled_ok:
        return "", ()
    raise BadInputError(
        f"{source}: expected '@classLabel true <names>' or '@targetLabel true', got neither; "
        "edgernn needs labelled cases to train"
    )


def _parse_case(line: str, number: int, source: str) -> tuple[list[np.ndarray], str]:
    *fields, target = line.split(":")
    if not fields:
        raise BadInputError(f"{source}: expected 'series:...:label', got no ':' on line {number}")
    dims: list[np.ndarray] = []
    for d, field in enumerate(fields, start=1):
        cells = [cell.strip() for cell in field.split(",")]
        try:
            values = np.array(cells, dtype=np.float64)
        except ValueError:
            raise _bad_cell(cells, number, d, source) from None
        if np.isnan(values).any():
            raise _missing(number, d, source, got="NaN")
        if np.isinf(values).any():
            raise BadInputError(f"{source}: expected finite numbers, got inf on line {number} (dimension {d})")
        if dims and len(values) != len(dims[0]):
            raise BadInputError(
                f"{source}: expected every dimension of a case to have {len(dims[0])} values, "
                f"got {len(values)} in dimension {d} on line {number}"
            )
        dims.append(values)
    return dims, target.strip()


def _missing(number: int, d: int, source: str, got: str = "'?'") -> BadInputError:
    return BadInputError(
        f"{source}: expected no missing values, got {got} on line {number} (dimension {d}); "
        "fill missing values first"
    )


def _bad_cell(cells: list[str], number: int, d: int, source: str) -> BadInputError:
    for cell in cells:
        if cell == "?":
            return _missing(number, d, source)
        if not is_number(cell):
            got = repr(cell) if cell else "an empty value"
            return BadInputError(f"{source}: expected a number, got {got} on line {number} (dimension {d})")
    return BadInputError(f"{source}: expected numbers on line {number} (dimension {d})")


def _check_declared_dimensions(tags: dict[str, list[str]], found: int, source: str) -> None:
    if _flag(tags, "@univariate") and found != 1:
        raise BadInputError(f"{source}: header says @univariate true, got {found} dimensions per case")
    declared = tags.get("@dimensions") or tags.get("@dimension")
    if declared and declared[0].isdigit() and int(declared[0]) != found:
        raise BadInputError(f"{source}: header says @dimensions {declared[0]}, got {found} dimensions per case")


def _stack_padded(cases: list[list[np.ndarray]]) -> tuple[np.ndarray, np.ndarray | None, tuple[str, ...]]:
    lengths = np.array([len(dims[0]) for dims in cases], dtype=np.int64)
    longest = int(lengths.max())
    x = np.zeros((len(cases), longest, len(cases[0])), dtype=np.float64)  # (N, T, D)
    for i, dims in enumerate(cases):
        x[i, : lengths[i], :] = np.stack(dims, axis=1)  # (T_i, D), left-aligned; zeros after the end
    padded = int((lengths < longest).sum())
    if not padded:
        return x, None, ()
    note = (f"variable length: {padded} of {len(cases)} series shorter than the longest ({int(lengths.min())}.."
            f"{longest} steps); each is used at its true length (the padding is never seen)")
    return x, lengths, (note,)
