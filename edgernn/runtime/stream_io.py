"""Line-oriented streaming: frames in (CSV or JSON array per line), one result out per frame.

This is what `edgernn run --stream` does on a pipe: ``sensor | edgernn run b --stream | consumer``.
Each result is written and flushed at once. A bad line is reported with its line number and,
by default, skipped; an empty line (or ``--reset-every N``) clears the state.

Two modes. **sliding**: each output is what ``run`` gives on the last T frames (T: the window the
model was trained on), every ``hop`` frames. **stateful**: the state is carried from the last reset,
for models trained on whole streams. Every record says how many frames it is based on (``step``)
and whether that is fewer than T (``warmup``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import numpy as np

from edgernn.bundle import current_umask
from edgernn.errors import BadInputError
from edgernn.runtime.records import csv_header, csv_row, jsonl_row
from edgernn.runtime.stream import SlidingWindowSession, StreamSession

MODES = ("sliding", "stateful")


FIRST_ERRORS = 10  # bad lines remembered by number; the rest are only counted, so memory stays flat
MAX_LINE = 1 << 20  # characters; a longer line is refused without parsing it


@dataclass
class StreamSummary:
    frames: int = 0
    skipped: int = 0
    resets: int = 0
    errors: list[str] = field(default_factory=list)  # the first FIRST_ERRORS bad lines' messages

    def note_error(self, message: str) -> None:
        self.skipped += 1
        if len(self.errors) < FIRST_ERRORS:
            self.errors.append(message)

    def line(self) -> str:
        return f"stream ended: {self.frames} frames, {self.skipped} bad lines skipped, {self.resets} resets"


def parse_frame(line: str, features: int) -> np.ndarray:
    """One frame from a line: ``0.1,0.2,0.3`` or ``[0.1, 0.2, 0.3]``."""
    text = line.strip()
    if len(text) > MAX_LINE:
        raise BadInputError(f"expected {features} values per frame, got a line of {len(text)} characters")
    if "\ufffd" in text or "\x00" in text:  # undecodable bytes (replaced on reading) or NUL: binary, not text
        raise BadInputError(f"expected {features} numbers as UTF-8 text, got binary data")
    try:
        values = json.loads(text) if text.startswith("[") else [float(v) for v in text.split(",")]
    except (ValueError, json.JSONDecodeError, RecursionError):
        raise BadInputError(f"expected {features} numbers separated by commas (or a JSON array), got {text[:60]!r}") from None
    if not isinstance(values, list) or len(values) != features:
        n = len(values) if isinstance(values, list) else 1
        raise BadInputError(f"expected {features} values per frame, got {n}")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise BadInputError(f"expected numbers, got {text[:60]!r}")  # e.g. [[1], [2]], ["1", "2"], [true]
    try:
        frame = np.asarray(values, np.float32)  # (F,)
    except OverflowError:  # a JSON integer beyond float range
        raise BadInputError("frame has NaN or infinite values") from None
    if not np.isfinite(frame).all():
        raise BadInputError("frame has NaN or infinite values")
    return frame


def pick_mode(spec, mode: str, window: int | None) -> tuple[str, int | None]:
    """``(mode, T)`` for ``--mode auto|sliding|stateful`` and ``--window``: auto slides over the training
    window when the model records one, and carries the state for a head on every step (sequence to
    sequence) or a model that records no window."""
    T = window or spec.window
    if window is not None and window < 1:
        raise BadInputError(f"--window must be at least 1 frame, got {window}")
    if mode == "auto":
        return ("sliding" if T and spec.head_input != "every_step" else "stateful"), T
    if mode == "sliding" and not T:
        raise BadInputError("this model records no training window: give --window N for --mode sliding")
    if mode not in MODES:
        raise BadInputError(f"--mode must be auto, sliding or stateful, got {mode!r}")
    return mode, T


def run_stream(
    session: StreamSession | SlidingWindowSession,
    lines: Iterable[str],
    out: TextIO,
    *,
    fmt: str = "jsonl",
    on_error: str = "skip",
    reset_every: int | None = None,
    warn: Callable[[str], None] = lambda m: None,
    window: int | None = None,
    hop: int = 1,
) -> StreamSummary:
    """Feed frames from ``lines`` to ``session``, writing a record to ``out`` every ``hop`` frames.

    ``window`` (T): a ``StreamSession``'s outputs on fewer than T frames since the last reset are marked
    ``warmup``; a ``SlidingWindowSession`` carries its own.
    """
    if hop < 1:
        raise BadInputError(f"--hop must be at least 1 frame, got {hop}")
    sliding = isinstance(session, SlidingWindowSession)
    T = session.window if sliding else window
    summary = StreamSummary()
    header_done = False
    F = session.spec.input_size
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            session.reset()
            summary.resets += 1
            continue
        try:
            frame = parse_frame(line, F)
        except BadInputError as e:
            message = f"line {number}: {e}"
            if on_error == "stop":
                raise BadInputError(message) from None
            warn(message)
            summary.note_error(message)
            continue
        summary.frames += 1
        if sliding:
            answer = session.push(frame)
        else:
            prediction = session.step(frame)
            due = (session.steps - (T or 1)) % hop == 0
            answer = (prediction, session.steps) if due else None
        since_reset = session.frames if sliding else session.steps
        if reset_every and since_reset % reset_every == 0:
            session.reset()
            summary.resets += 1
        if answer is None:
            continue
        prediction, seen = answer
        record = {"frame": summary.frames, "step": seen, "warmup": bool(T and seen < T),
                  **prediction.records()[0]}
        if fmt == "jsonl":
            out.write(jsonl_row(record))
        else:
            if not header_done:
                out.write(csv_header(record))
                header_done = True
            out.write(csv_row(record))
        out.flush()
    return summary


class OutputOnFirstWrite:
    """A text sink for ``--output`` that leaves an existing file untouched until there is something to write.

    Text goes to a temporary file beside ``path``; the first write renames it over ``path`` (so a reader
    sees each answer at once from then on). ``close(keep=False)`` before any write removes the
    temporary file and the old output stays as it was; ``close(keep=True)`` publishes even an empty result.
    """

    def __init__(self, path: Path):
        import tempfile

        self.path, self.published = Path(path), False
        fd, self.tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".partial", dir=self.path.parent)
        os.fchmod(fd, 0o666 & ~current_umask())
        self.file = os.fdopen(fd, "w", encoding="utf-8")

    def write(self, text: str) -> int:
        n = self.file.write(text)
        if not self.published and text:
            self.publish()
        return n

    def flush(self) -> None:
        self.file.flush()

    def publish(self) -> None:
        self.file.flush()
        os.replace(self.tmp, self.path)
        self.published = True

    def close(self, keep: bool) -> None:
        try:
            self.file.close()
            if not self.published:
                if keep:
                    os.replace(self.tmp, self.path)
                    self.published = True
        finally:
            if not self.published:
                Path(self.tmp).unlink(missing_ok=True)
