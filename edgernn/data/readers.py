"""Loading a user's data file into a ``Dataset`` with ``load_data``.

Two shapes of data exist: a long series to forecast (``head="forecast"``), cut into windows of
``window`` steps whose target is every column ``horizon`` steps after the window's end
(see ``windowing.py``); and files holding one whole sequence per case with its target
(``head="classification"`` or ``"regression"``), where the sequence length is the window.

Formats:

- ``.csv`` (comma) / ``.tsv`` (tab), header row optional (see ``delimited.py``).
  Forecast: rows are time steps, columns features. Otherwise, UCR style: one case per row,
  the first column the target (a class name or integer for classification, a number for
  regression), the rest one univariate sequence; every row equally long.
- ``.npy``: 1-D (T,) or 2-D (T, F) series for forecast; for classification/regression a 2-D
  (N, 1 + T) array whose first column is the target.
- ``.npz``: arrays ``x`` (N, T) or (N, T, F) and ``y`` (N,) or (N, O); optional ``labels``, the
  class names for integer ``y`` in index order.
- ``.ts``: the UCR/UEA text format (see ``ts_format.py``).

Class names are the sorted distinct targets (numerically when every target is a number, e.g.
"2" < "10"), except in ``.ts`` files and ``.npz`` with ``labels``, where the declared order holds.

With ``head=None`` the head is inferred only where the file says it: ``.ts`` from
``@classLabel``/``@targetLabel``; a CSV whose first column holds text -> classification; a 1-D
``.npy`` -> forecast; ``.npz`` -> classification for text, boolean or integer ``y``, regression
for float ``y`` (with a note). Anything else asks for ``--head``. Forecast without ``window``
uses 32 steps and says so in a note. ``horizon`` and ``stride`` apply to forecasting only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgernn.data.checks import load_numpy, require_file, require_finite, require_numeric, require_positive_int
from edgernn.data.datasets import Dataset
from edgernn.data.delimited import Table, is_date_or_time, is_number, read_table
from edgernn.data.labels import canonical_label, encode_labels
from edgernn.data.ts_format import read_ts
from edgernn.data.windowing import make_windows
from edgernn.errors import BadInputError
from edgernn.spec import HEADS

DATA_EXTENSIONS = (".csv", ".tsv", ".npy", ".npz", ".ts")
DEFAULT_FORECAST_WINDOW = 32
# How a training file is laid out; recorded in the spec so that run reads inputs the same way.
LAYOUTS = {
    "series": "rows are time steps, columns features (a series to forecast)",
    "series-dated": "rows are time steps after a leading date/time column (dropped), columns features",
    "cases": "one case per row: the target in the first column, then the sequence",
    "npz": "arrays x and y in a .npz",
    "ts": "UCR/UEA .ts cases",
}
PASS_HEAD = "pass --head forecast, regression or classification"


@dataclass(frozen=True)
class _Series:
    """A long series to forecast: (L, F)."""

    values: np.ndarray
    notes: tuple[str, ...] = ()
    layout: str = "series"
    season: int | None = None


@dataclass(frozen=True)
class _Cases:
    """Whole sequences with targets: x (N, T, F); y (N,) class index or (N, O) values."""

    x: np.ndarray
    y: np.ndarray
    head: str
    labels: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    layout: str = "cases"  # how the file is laid out (see LAYOUTS)
    lengths: np.ndarray | None = None  # (N,) true lengths of right-padded variable-length cases


def load_data(
    path: str | Path, *, head: str | None = None, window: int | None = None, horizon: int = 1, stride: int = 1,
    labels: tuple[str, ...] | None = None,
) -> Dataset:
    """Read ``path`` into a Dataset; see the module docstring for the rules of each format.

    ``labels``: the class names a model was trained with (its spec's label list). Class targets are
    then mapped through it, so index k means the same class as in training; a label outside it is
    refused by name. A file holding only some of the classes is fine then.
    """
    if head is not None and head not in HEADS:
        raise BadInputError(f"head must be one of {', '.join(HEADS)}, got {head!r}")
    require_positive_int(window, "window", allow_none=True)
    require_positive_int(horizon, "horizon")
    require_positive_int(stride, "stride")
    p = require_file(path, extensions=DATA_EXTENSIONS)
    source = str(path)
    loaded = _READERS[p.suffix.lower()](p, source, head, labels is not None)
    if isinstance(loaded, _Series):
        return _forecast_dataset(loaded, window, horizon, stride, source, p.stem)
    if horizon != 1 or stride != 1:
        raise BadInputError(
            f"{source}: --horizon and --stride apply to --head forecast only, got {loaded.head} data; drop them"
        )
    if labels is not None and loaded.head == "classification":
        loaded = _through_labels(loaded, tuple(labels), source)
    return _cases_dataset(loaded, window, source, p.stem)


def _through_labels(cases: _Cases, known: tuple[str, ...], source: str) -> _Cases:
    """Re-index class targets by the model's label list; refuse a label the model does not know."""
    index = {canonical_label(label): k for k, label in enumerate(known)}
    names = [canonical_label(label) for label in cases.labels]
    present = sorted(set(int(v) for v in np.unique(cases.y)))
    unknown = [names[k] for k in present if names[k] not in index]
    if unknown:
        count = int(np.isin(cases.y, [names.index(u) for u in unknown]).sum())
        raise BadInputError(
            f"{source}: class label {unknown[0]!r} is not one the model was trained on "
            f"({', '.join(known)}); {count} case(s) carry unknown labels ({', '.join(map(repr, unknown))})"
        )
    mapping = np.array([index.get(name, -1) for name in names], dtype=np.int64)
    return _Cases(cases.x, mapping[cases.y], cases.head, tuple(known), cases.notes, cases.layout, cases.lengths)


def _forecast_dataset(
    series: _Series, window: int | None, horizon: int, stride: int, source: str, name: str
) -> Dataset:
    notes = series.notes
    if window is None:
        window = DEFAULT_FORECAST_WINDOW
        notes += (f"no window given; using windows of {window} steps (pass --window to change)",)
    x, y = make_windows(series.values, window=window, horizon=horizon, stride=stride, source=source)
    return Dataset(x, y, "forecast", name=name, notes=notes, layout=series.layout, season=series.season)


def _cases_dataset(cases: _Cases, window: int | None, source: str, name: str) -> Dataset:
    steps = cases.x.shape[1]
    if window is not None and window != steps:
        raise BadInputError(
            f"{source}: sequences have {steps} steps, got --window {window}; "
            "omit --window for files holding one sequence per case"
        )
    return Dataset(cases.x, cases.y, cases.head, labels=cases.labels, name=name, notes=cases.notes,
                   layout=cases.layout, lengths=cases.lengths)


# ---- CSV / TSV --------------------------------------------------------------------------------


def _read_table_file(p: Path, source: str, head: str | None, any_classes: bool = False) -> _Series | _Cases:
    table = read_table(p, source)
    notes: tuple[str, ...] = ()
    if len(table.rows[0]) >= 2 and all(is_date_or_time(cells[0]) for cells in table.rows):
        return _series_with_time_column(table, head)
    if _year_or_index_column(table) and (head == "forecast" or (head is None and _time_header(table))):
        return _series_with_index_column(table, head)
    if head is None:
        if not any(cells[0] and not is_number(cells[0]) for cells in table.rows):
            raise BadInputError(
                f"{source}: cannot tell whether rows are time steps (forecast) or one labelled sequence "
                f"each; {PASS_HEAD}"
            )
        head = "classification"
        notes = ("inferred --head classification from the text labels in the first column",)
    width = len(table.rows[0])
    if head == "forecast":
        table.require_width(width, f"{width} features, as on line {table.lines[0]}")
        table.require_no_gaps("series")
        return _Series(table.numbers(), notes)
    if width < 2:
        raise BadInputError(f"{source}: expected a target and a sequence on each row, got 1 column; {PASS_HEAD}")
    table.require_width(width, f"target + {width - 1} steps, as on line {table.lines[0]}")
    x = table.numbers(first_column=1)[:, :, None]  # (N, T, 1)
    if head == "classification":
        y, labels = encode_labels(_label_cells(table), source, min_classes=1 if any_classes else 2)
        return _Cases(x, y, head, labels, notes)
    return _Cases(x, _target_cells(table), head, (), notes)


def _series_with_time_column(table: Table, head: str | None) -> _Series:
    """A series whose first column is a date/time: rows are time steps; the column is dropped."""
    source = table.source
    name = repr(table.header[0]) if table.header and table.header[0] else "1"
    first, last = table.rows[0][0], table.rows[-1][0]
    if head not in (None, "forecast"):
        raise BadInputError(
            f"{source}: column {name} holds dates/times ({first} … {last}), so rows are time steps of a series, "
            f"not {head} cases; pass --head forecast (or drop the date column if each row really is one case)"
        )
    stamps = [cells[0] for cells in table.rows]
    iso = re.compile(r"^\d{4}[-/.]\d")
    if all(iso.match(s) and len(s) == len(stamps[0]) for s in stamps):  # ISO-like: text order is time order
        for row in range(1, len(stamps)):
            if stamps[row] <= stamps[row - 1]:
                raise BadInputError(
                    f"{source}: expected rows in time order, got {stamps[row]} after {stamps[row - 1]} "
                    f"on line {table.lines[row]}; sort the file by its date column first"
                )
    width = len(table.rows[0])
    table.require_width(width, f"a date and {width - 1} features, as on line {table.lines[0]}")
    inferred = "inferred --head forecast; " if head is None else ""
    note = (f"{inferred}column {name} holds dates/times ({first} … {last}): rows taken as {len(stamps)} time steps "
            "in file order, the date column dropped")
    season = _season(stamps)
    if season:
        note += f"; {'monthly' if season == 12 else 'quarterly'} dates: seasonal baselines use a season of {season} steps"
    return _Series(table.numbers(first_column=1), (note,), layout="series-dated", season=season)


TIME_NAMES = ("year", "date", "time", "t", "step", "index", "period", "month", "day")


def _time_header(table: Table) -> bool:
    return bool(table.header) and table.header[0].strip().lower() in TIME_NAMES


def _year_or_index_column(table: Table) -> bool:
    """A first column of integers that go up by exactly 1 a row (years, a row index), beside other columns."""
    cells = [cells[0] for cells in table.rows]
    if len(table.rows[0]) < 2 or len(cells) < 3 or not all(c.lstrip("-").isdigit() for c in cells):
        return False
    values = np.array([int(c) for c in cells])
    return bool(np.all(np.diff(values) == 1))


def _series_with_index_column(table: Table, head: str | None) -> _Series:
    """A series whose first column counts the time steps (years, an index): the column is dropped."""
    name = repr(table.header[0]) if table.header and table.header[0] else "1"
    first, last = table.rows[0][0], table.rows[-1][0]
    width = len(table.rows[0])
    table.require_width(width, f"a time index and {width - 1} features, as on line {table.lines[0]}")
    inferred = "inferred --head forecast; " if head is None else ""
    note = (f"{inferred}column {name} counts the time steps ({first} … {last}, one per row): read as a time index "
            "and dropped, not forecast as a feature")
    return _Series(table.numbers(first_column=1), (note,), layout="series-dated")


def _season(stamps: list[str]) -> int | None:
    """12 for monthly stamps (1949-01, 1991 Jul), 4 for quarterly (1970 Q1), else None."""
    if all(re.match(r"^\d{4}[-/.]\d{2}$", s) for s in stamps) or \
            all(re.match(r"^\d{4}[ -]?[A-Za-z]{3}", s) and not re.search(r"Q\d", s) for s in stamps):
        return 12
    if all(re.search(r"Q[1-4]", s, re.IGNORECASE) for s in stamps):
        return 4
    return None


def _label_cells(table: Table) -> np.ndarray:
    for row, cells in enumerate(table.rows):
        if not cells[0]:
            raise BadInputError(f"{table.source}: expected a class label, got an empty cell on {table.where(row, 0)}")
    return np.array([cells[0] for cells in table.rows])


def _target_cells(table: Table) -> np.ndarray:
    for row, cells in enumerate(table.rows):
        if not is_number(cells[0]) or not np.isfinite(float(cells[0])):
            got = repr(cells[0]) if cells[0] else "an empty cell"
            raise BadInputError(
                f"{table.source}: expected a finite numeric target, got {got} on {table.where(row, 0)}"
            )
    return np.array([float(cells[0]) for cells in table.rows])[:, None]  # (N, 1)


# ---- NPY / NPZ --------------------------------------------------------------------------------


def _np_load(p: Path, source: str):
    return load_numpy(p, source, "a numeric or string dtype")


def _read_npy(p: Path, source: str, head: str | None, any_classes: bool = False) -> _Series | _Cases:
    array = _np_load(p, source)
    if not isinstance(array, np.ndarray):  # a .npz archive under a .npy name
        array.close()
        raise BadInputError(f"{source}: expected one array (.npy), got a .npz archive; rename it to .npz")
    if head is None:
        if array.ndim != 1:
            raise BadInputError(
                f"{source}: cannot tell whether an array of shape {array.shape} is a series or labelled rows; "
                + PASS_HEAD
            )
        head = "forecast"
    values = require_numeric(array, source, "values")
    require_finite(values, source, "values")
    if head == "forecast":
        if values.ndim not in (1, 2) or values.shape[0] == 0:
            raise BadInputError(f"{source}: expected a series of shape (T,) or (T, F) to forecast, got {values.shape}")
        return _Series(values.reshape(len(values), -1))  # (T, F)
    if values.ndim != 2 or values.shape[1] < 2 or values.shape[0] == 0:
        raise BadInputError(
            f"{source}: expected an array of shape (N, 1 + T) with the target in column 0, got {values.shape}; "
            "for multivariate sequences save x and y in a .npz"
        )
    x = values[:, 1:, None]  # (N, T, 1)
    if head == "classification":
        y, labels = encode_labels(values[:, 0], source, min_classes=1 if any_classes else 2)
        return _Cases(x, y, head, labels)
    return _Cases(x, values[:, :1], head)  # y (N, 1)


def _read_npz(p: Path, source: str, head: str | None, any_classes: bool = False) -> _Cases:
    archive = _np_load(p, source)
    if isinstance(archive, np.ndarray):
        raise BadInputError(f"{source}: expected a .npz archive with arrays 'x' and 'y', got one array (.npy)")
    with archive:
        missing = [key for key in ("x", "y") if key not in archive.files]
        if missing:
            raise BadInputError(f"{source}: expected arrays 'x' and 'y', got {sorted(archive.files)}")
        x_raw, y_raw = archive["x"], archive["y"]
        names = tuple(str(v) for v in archive["labels"]) if "labels" in archive.files else ()
    if head == "forecast":
        raise BadInputError(f"{source}: a .npz holds labelled sequences; to forecast give the series as .csv or .npy")
    x = require_numeric(x_raw, source, "x")
    if x.ndim == 2:
        x = x[:, :, None]  # (N, T, 1)
    if x.ndim != 3 or x.shape[0] == 0:
        raise BadInputError(f"{source}: expected x of shape (N, T) or (N, T, F), got {x_raw.shape}")
    require_finite(x, source, "x")
    if y_raw.ndim not in (1, 2) or len(y_raw) != len(x):
        raise BadInputError(f"{source}: expected y of shape ({len(x)},) or ({len(x)}, O), got {y_raw.shape}")
    notes: tuple[str, ...] = ()
    if head is None:
        head = "regression" if y_raw.dtype.kind == "f" else "classification"
        notes = (f"inferred --head {head} from the {y_raw.dtype} dtype of y",)
    if head == "regression":
        y = require_numeric(y_raw, source, "y")
        require_finite(y, source, "y")
        return _Cases(x, y.reshape(len(y), -1), head, (), notes, "npz")
    if y_raw.ndim != 1:
        raise BadInputError(f"{source}: expected class labels y of shape ({len(x)},), got {y_raw.shape}")
    if names:
        if y_raw.dtype.kind not in "iu" or y_raw.min() < 0 or y_raw.max() >= len(names):
            raise BadInputError(
                f"{source}: with 'labels' given, expected integer y in 0..{len(names) - 1}, got dtype {y_raw.dtype}"
            )
        return _Cases(x, y_raw.astype(np.int64), head, names, notes, "npz")
    y, labels = encode_labels(y_raw, source, min_classes=1 if any_classes else 2)
    return _Cases(x, y, head, labels, notes, "npz")


# ---- .ts --------------------------------------------------------------------------------------


def _read_ts(p: Path, source: str, head: str | None, any_classes: bool = False) -> _Cases:
    cases = read_ts(p, source)
    if head == "forecast":
        raise BadInputError(f"{source}: a .ts file holds labelled cases; to forecast give the series as .csv or .npy")
    if head is not None and head != cases.head:
        raise BadInputError(f"{source}: the header declares {cases.head} targets, got --head {head}; drop --head")
    if cases.head == "classification":
        index = {label: i for i, label in enumerate(cases.labels)}
        y = np.array([index[t] for t in cases.targets], dtype=np.int64)
        return _Cases(cases.x, y, cases.head, cases.labels, cases.notes, "ts", cases.lengths)
    y = np.array([float(t) for t in cases.targets])[:, None]  # (N, 1)
    require_finite(y, source, "targets")
    return _Cases(cases.x, y, cases.head, (), cases.notes, "ts", cases.lengths)


_READERS = {".csv": _read_table_file, ".tsv": _read_table_file, ".npy": _read_npy, ".npz": _read_npz, ".ts": _read_ts}


def read_series(p: Path, source: str) -> np.ndarray:
    """A series to forecast from ``.csv``/``.tsv``/``.npy``, read exactly as training reads one: (L, F)."""
    reader = _READERS.get(p.suffix.lower())
    if reader not in (_read_table_file, _read_npy):
        raise BadInputError(f"{source}: expected the series as .csv, .tsv or .npy, got {p.suffix}")
    loaded = reader(p, source, "forecast")
    return loaded.values.reshape(len(loaded.values), -1)
