"""The last line of defence: an unexpected exception is one line naming it as a bug, exit 1; --debug or
EDGERNN_DEBUG=1 shows the traceback instead."""

from __future__ import annotations

import pytest
from hostile_fixtures import bundle, not_root, small_bundle, windows  # noqa: F401  (fixtures)
from hostile_helpers import invoke


@pytest.fixture
def broken_info(monkeypatch):
    import edgernn.info

    def describe(path):
        raise RuntimeError("something\nunforeseen")

    monkeypatch.setattr(edgernn.info, "describe", describe)


def test_unexpected_exception_is_one_line_naming_a_bug(broken_info, bundle):
    result = invoke(["info", bundle])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert lines[0].startswith("internal error (a bug in edgernn): RuntimeError: something unforeseen at ")
    assert "report it" in lines[0] and "--debug" in lines[0] and "EDGERNN_DEBUG=1" in lines[0]


@pytest.mark.parametrize("how", ["flag", "env"])
def test_debug_shows_the_traceback(how, broken_info, bundle):
    if how == "flag":
        result = invoke(["--debug", "info", bundle])
    else:
        result = invoke(["info", bundle], env={"EDGERNN_DEBUG": "1"})
    assert isinstance(result.exception, RuntimeError)  # propagated: the traceback is printed by Python


def test_edgernn_errors_stay_one_line_with_exit_2(bundle):
    result = invoke(["run", bundle / "nope"])
    assert result.exit_code == 2 and result.stderr.startswith("error: ") and "bug" not in result.stderr


@pytest.mark.parametrize("args, words", [(["--bogus"], "No such option '--bogus'"),
                                         (["nosuchcommand"], "No such command 'nosuchcommand'"),
                                         (["run"], "Missing argument 'MODEL'")])
def test_usage_errors_are_one_line(args, words):
    result = invoke(args)
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ") and words in result.stderr
