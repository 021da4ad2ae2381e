"""Reading comma- (``.csv``) or tab-separated (``.tsv``) text into cells that remember their line.

Blank lines are skipped between cases; inside a series (rows are time steps) they are refused,
since dropping one would shift every later step (``Table.require_no_gaps``). The first row is a header, and dropped, when one of its cells after the
first is non-numeric text, or when its only or first cell is text and the next row's is a number
(a one-column series with a title). Errors name the line and column of the offending cell.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgernn.errors import BadInputError


@dataclass(frozen=True)
class Table:
    rows: list[list[str]]  # data rows, header removed, cells stripped
    lines: list[int]  # 1-based line number of each row in the file
    source: str
    has_header: bool
    header: tuple[str, ...] = ()  # the header row's cells, when there is one
    blank_lines: tuple[int, ...] = ()  # empty lines between the first and the last data row

    def require_no_gaps(self, what: str) -> None:
        """Refuse empty lines inside the data where each row is a time step: dropping one would shift the series."""
        if self.blank_lines:
            first, count = self.blank_lines[0], len(self.blank_lines)
            raise BadInputError(
                f"{self.source}: line {first} is empty inside the {what} ({count} empty line{'s' * (count > 1)} "
                "in all); every row is a time step, so a missing one would shift the series: fill it, or delete "
                "the line if it is not a step"
            )

    def where(self, row: int, column: int) -> str:
        return f"line {self.lines[row]}, column {column + 1}"

    def require_width(self, width: int, expected: str) -> None:
        """Every row has ``width`` cells; ``expected`` describes them for the error."""
        for row, cells in enumerate(self.rows):
            if len(cells) != width:
                raise BadInputError(
                    f"{self.source}: expected {width} values per row ({expected}), "
                    f"got {len(cells)} on line {self.lines[row]}"
                )

    def numbers(self, first_column: int = 0) -> np.ndarray:
        """Cells from ``first_column`` on as a finite float64 matrix (rows must be equally wide)."""
        try:
            values = np.array([cells[first_column:] for cells in self.rows], dtype=np.float64)
        except ValueError:
            raise self._non_numeric(first_column) from None
        bad = ~np.isfinite(values)
        if bad.any():
            row, column = (int(i) for i in np.argwhere(bad)[0])
            raise BadInputError(
                f"{self.source}: expected finite numbers, got {self.rows[row][first_column + column]!r} "
                f"on {self.where(row, first_column + column)}; fill or drop missing values first"
            )
        return values

    def _non_numeric(self, first_column: int) -> BadInputError:
        for row, cells in enumerate(self.rows):
            for column in range(first_column, len(cells)):
                if not is_number(cells[column]):
                    got = repr(cells[column]) if cells[column] else "an empty cell"
                    return BadInputError(
                        f"{self.source}: expected a number, got {got} on {self.where(row, column)}"
                    )
        return BadInputError(f"{self.source}: expected numbers")  # unreachable in practice


_DATE = r"\d{4}[-/.]\d{1,2}(?:[-/.]\d{1,2})?|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}"
_TIME = r"\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?"
_MONTH = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*"
_NAMED = rf"\d{{4}}[ -]?(?:{_MONTH}|Q[1-4])|(?:{_MONTH}|Q[1-4])[ -]?\d{{2,4}}"  # 1991 Jul, Jul-1991, 1970 Q1
_DATE_TIME = re.compile(rf"^(?:(?:{_DATE})(?:[ T]{_TIME})?(?:Z|[+-]\d{{2}}:?\d{{2}})?|{_TIME}|{_NAMED})$",
                        re.IGNORECASE)


def is_date_or_time(text: str) -> bool:
    """A calendar date, a date and time, a time of day, a named month or quarter (``1949-01``,
    ``2020-03-01 12:00``, ``12:30``, ``1991 Jul``, ``1970 Q1``)."""
    return bool(_DATE_TIME.match(text.strip()))


def is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_table(path: Path, source: str) -> Table:
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    rows: list[list[str]] = []
    lines: list[int] = []
    blank: list[int] = []
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f, delimiter=delimiter)
            for cells in reader:
                cells = [cell.strip() for cell in cells]
                if any(cells):
                    rows.append(cells)
                    lines.append(reader.line_num)
                else:
                    blank.append(reader.line_num)
    except UnicodeDecodeError:
        raise BadInputError(f"{source}: expected UTF-8 text, got binary data; is it really a CSV file?") from None
    except csv.Error as e:
        raise BadInputError(f"{source}: not a readable CSV file: {e}") from None
    except PermissionError:
        raise BadInputError(f"{source}: permission denied; make the file readable") from None
    except OSError as e:
        raise BadInputError(f"{source}: cannot read it ({e.strerror or e})") from None
    has_header = bool(rows) and _looks_like_header(rows)
    header: tuple[str, ...] = ()
    if has_header:
        header = tuple(rows[0])
        rows, lines = rows[1:], lines[1:]
    if not rows:
        raise BadInputError(f"{source}: expected rows of numbers, got no data rows")
    inside = tuple(n for n in blank if lines[0] < n < lines[-1])
    return Table(rows, lines, source, has_header, header=header, blank_lines=inside)


def _looks_like_header(rows: list[list[str]]) -> bool:
    first = rows[0]
    if any(cell and not is_number(cell) for cell in first[1:]):
        return True
    first_is_text = bool(first[0]) and not is_number(first[0])
    return first_is_text and len(rows) > 1 and is_number(rows[1][0])
