"""Errors a user can act on.

Every error edgernn raises on purpose is an ``EdgeRnnError`` whose message is one line that says
what was expected, what came, and what to do. The CLI prints that line and exits with the
error's ``exit_code``: 2 for bad input, 1 for a check that failed.
"""

from __future__ import annotations


class EdgeRnnError(Exception):
    """Base class: a user-facing, one-line message."""

    exit_code = 2


class BadInputError(EdgeRnnError):
    """The input (data, shapes, options) is not what the command expects."""


class ModelFileError(EdgeRnnError):
    """A model file or bundle is missing, unreadable, or fails its checksum."""


class ExportError(EdgeRnnError):
    """The model cannot be exported as asked."""


class CheckFailedError(EdgeRnnError):
    """A parity, accuracy or verification check ran and failed."""

    exit_code = 1


class MissingDependencyError(EdgeRnnError):
    """An optional dependency (an extra) is needed for this command."""

    def __init__(self, package: str, extra: str | None, purpose: str, fix: str | None = None):
        fix = fix or (f"pip install 'edgernn[{extra}]'" if extra else f"pip install {package}")
        super().__init__(f"{purpose} needs {package}, which is not installed: {fix}")


class MissingDependenciesError(EdgeRnnError):
    """Packages a command needs are missing: one line each, found before any work started."""

    def __init__(self, lines: list[str]):
        self.lines = list(lines)
        super().__init__("\n".join(self.lines))
