"""Checkpoints whose spec disagrees with their weights, and training series with holes: refused at load,
naming the mismatch or the line, before any graph is built or any epoch is run."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hostile_fixtures import bundle, not_root, small_bundle, windows  # noqa: F401  (fixtures)
from hostile_helpers import SPEC, invoke, problems, write_run

from edgernn.spec import ModelSpec

pytest.importorskip("safetensors")

def spec_with(**changes) -> ModelSpec:
    return ModelSpec(**{**SPEC.to_dict(), **changes})


MISMATCHES = {
    "hidden size": (spec_with(hidden_size=8), {}, "rnn.weight_ih_l0 of shape (32, 2)"),
    "cell": (spec_with(cell="gru"), {}, "rnn.weight_ih_l0 of shape (18, 2)"),
    "input size": (spec_with(input_size=3), {}, "rnn.weight_ih_l0 of shape (24, 3)"),
    "layers": (spec_with(num_layers=2), {}, "has no weight rnn.weight_ih_l1"),
    "outputs": (spec_with(output_size=3), {}, "head.weight of shape (3, 6)"),
    "bidirectional": (spec_with(bidirectional=True), {}, "has no weight rnn.weight_ih_l0_reverse"),
    "missing bias": (SPEC, {"drop": ("rnn.bias_hh_l0",)}, "has no weight rnn.bias_hh_l0"),
    "extra weight": (SPEC, {"extra": ("rnn.weight_ih_l7",)}, "rnn.weight_ih_l7"),
}


@pytest.mark.parametrize("case", list(MISMATCHES))
@pytest.mark.parametrize("command", ["export", "validate"])
def test_spec_weight_mismatch_is_named_at_load(case, command, tmp_path, small_bundle):
    spec, options, words = MISMATCHES[case]
    run = write_run(tmp_path / "run", spec, SPEC, **options)
    if command == "export":
        args = ["export", run, "--out", tmp_path / "b"]
    else:
        args = ["validate", small_bundle, "--checkpoint", run]
    result = invoke(args)
    assert problems(result) == [], problems(result)
    assert result.exit_code == 2
    assert words in result.stderr and "disagree" in result.stderr
    assert not (tmp_path / "b").exists()


def test_matching_checkpoint_loads(tmp_path):
    from edgernn.checkpoint import load_checkpoint

    ckpt = load_checkpoint(write_run(tmp_path / "run", SPEC, SPEC))
    assert ckpt.spec == SPEC and ckpt.weights["rnn.weight_hh_l0"].shape == (24, 6)


@pytest.mark.parametrize("damage, words", [
    (lambda run: (run / "checkpoint.json").write_text("[" * 100_000), "damaged checkpoint description"),
    (lambda run: (run / "checkpoint.json").write_bytes(b"\xff\xfe"), "damaged checkpoint description"),
    (lambda run: (run / "checkpoint.json").write_text(json.dumps({"spec": {"cell": "lstm", "spec_version": 9}})),
     "version"),
    (lambda run: (run / "checkpoint.json").write_text(json.dumps({"spec": "lstm"})), "damaged checkpoint"),
    (lambda run: (run / "model.safetensors").write_bytes(b"\xff" * 64), "not a readable safetensors file"),
])
def test_damaged_checkpoint_is_one_line(damage, words, tmp_path):
    run = write_run(tmp_path / "run", SPEC, SPEC)
    damage(run)
    result = invoke(["export", run, "--out", tmp_path / "b"])
    assert problems(result) == [] and result.exit_code == 2
    assert words in result.stderr


# ---- training series with holes ---------------------------------------------------------------


def series(n=60) -> list[str]:
    return [f"{np.sin(i / 5):.4f}" for i in range(n)]


def test_empty_line_inside_a_one_column_series_is_refused_with_its_line(tmp_path):
    from edgernn.data import load_data
    from edgernn.errors import BadInputError

    rows = series()
    (tmp_path / "s.csv").write_text("\n".join(["value", *rows[:30], "", *rows[30:]]) + "\n\n")
    with pytest.raises(BadInputError, match=r"s\.csv: line 32 is empty inside the series"):
        load_data(tmp_path / "s.csv", head="forecast", window=5)


def test_empty_cell_inside_a_series_is_refused_with_its_line(tmp_path):
    from edgernn.data import load_data
    from edgernn.errors import BadInputError

    rows = [f"{r},{r}" for r in series()]
    rows[10] = rows[10].split(",")[0] + ","
    (tmp_path / "s.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(BadInputError, match=r"empty cell on line 11, column 2"):
        load_data(tmp_path / "s.csv", head="forecast", window=5)


def test_empty_row_of_commas_inside_a_series_is_refused(tmp_path):
    from edgernn.data import load_data
    from edgernn.errors import BadInputError

    rows = [f"{r},{r}" for r in series()]
    rows.insert(20, ",")
    (tmp_path / "s.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(BadInputError, match=r"line 21 is empty"):
        load_data(tmp_path / "s.csv", head="forecast", window=5)


def test_blank_lines_at_the_end_and_between_cases_are_fine(tmp_path):
    from edgernn.data import load_data

    (tmp_path / "s.csv").write_text("\n".join(series()) + "\n\n\n")
    assert load_data(tmp_path / "s.csv", head="forecast", window=5).x.shape == (55, 5, 1)
    (tmp_path / "c.csv").write_text("a,1,2,3\n\nb,4,5,6\n")
    assert load_data(tmp_path / "c.csv", head="classification").x.shape == (2, 3, 1)


def test_train_refuses_a_series_with_a_hole(tmp_path):
    rows = series()
    (tmp_path / "s.csv").write_text("\n".join([*rows[:30], "", *rows[30:]]) + "\n")
    result = invoke(["train", "--data", tmp_path / "s.csv", "--head", "forecast", "--window", "5",
                     "--epochs", "1", "--out", tmp_path / "run"])
    assert problems(result) == [] and result.exit_code == 2
    assert "line 31 is empty" in result.stderr
    assert not (tmp_path / "run").exists()
