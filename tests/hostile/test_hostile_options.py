"""Numeric options are bounded and checked: out-of-range values are one line and exit 2, never a hang."""

from __future__ import annotations

import pytest
from hostile_fixtures import bundle, not_root, small_bundle, windows  # noqa: F401  (fixtures)
from hostile_helpers import invoke, problems

from edgernn.cli.options import MAX_THREADS

CASES = [
    (["run", "{b}", "--input", "{x}", "--threads", "100000"], "--threads"),
    (["run", "{b}", "--input", "{x}", "--threads", "0"], "--threads"),
    (["run", "{b}", "--input", "{x}", "--threads", "-4"], "--threads"),
    (["run", "{b}", "--stream", "--reset-every", "-3"], "--reset-every"),
    (["run", "{b}", "--stream", "--reset-every", "0"], "--reset-every"),
    (["run", "{b}", "--input", "{x}", "--threads", "two"], "--threads"),
    (["verify", "{b}", "--threads", "100000"], "--threads"),
    (["bench", "{b}", "--batch", "0"], "--batch"),
    (["bench", "{b}", "--batch", "100000000"], "--batch"),
    (["bench", "{b}", "--repeat", "-1"], "--repeat"),
    (["bench", "{b}", "--cold-runs", "-1"], "--cold-runs"),
    (["bench", "{b}", "--length", "0"], "--length"),
    (["bench", "{b}", "--threads", "100000"], "--threads"),
    (["evaluate", "{b}", "--threads", "0"], "--threads"),
    (["evaluate", "{b}", "--max-drop", "-1"], "--max-drop"),
    (["validate", "{b}", "--batch", "0"], "--batch"),
    (["validate", "{b}", "--length", "-2"], "--length"),
    (["train", "--task", "sum", "--out", "{t}/r", "--epochs", "0"], "--epochs"),
    (["train", "--task", "sum", "--out", "{t}/r", "--hidden", "0"], "--hidden"),
    (["train", "--task", "sum", "--out", "{t}/r", "--dropout", "1.5"], "--dropout"),
    (["train", "--task", "sum", "--out", "{t}/r", "--lr", "-0.1"], "--lr"),
    (["train", "--task", "sum", "--out", "{t}/r", "--batch-size", "0"], "--batch-size"),
    (["train", "--task", "sum", "--out", "{t}/r", "--window", "0"], "--window"),
    (["train", "--task", "sum", "--out", "{t}/r", "--samples", "-5"], "--samples"),
    (["train", "--task", "sum", "--out", "{t}/r", "--threads", "100000"], "--threads"),
    (["export", "{t}/r", "--out", "{t}/b", "--opset", "-1"], "--opset"),
]


@pytest.mark.parametrize("args, option", CASES, ids=[" ".join(a[:1] + a[-2:]) for a, _ in CASES])
def test_out_of_range_option_is_one_line(args, option, bundle, windows, tmp_path):
    args = [a.format(b=bundle, x=windows, t=tmp_path) for a in args]
    result = invoke(args, input="0.5\n")
    assert problems(result) == []
    assert result.exit_code == 2
    assert option in result.stderr and result.stdout == ""
    assert not (tmp_path / "r").exists() and not (tmp_path / "b").exists()


def test_threads_at_the_bound_runs(bundle, windows):
    result = invoke(["run", bundle, "--input", windows, "--threads", str(MAX_THREADS)])
    assert result.exit_code == 0, result.stderr
    assert len(result.stdout.splitlines()) == 2


def test_unknown_option_is_one_line(bundle):
    result = invoke(["run", bundle, "--frobnicate"])
    assert problems(result) == [] and result.exit_code == 2
    assert "--frobnicate" in result.stderr
