"""Real data sets end to end (issue 11): labels that cannot be misread, files that cannot be
misread, official test files, defaults sized to the data, recorded data files.

Small synthetic fixtures stand in where a real file is not needed; real UCR/UEA files and
forecasting CSVs come from the aeon wheel (see tests/aeon_data.py), never from aeon itself.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from aeon_data import MISSING, aeon_file
from edgernn.data import load_data
from edgernn.errors import BadInputError
from helpers import invoke

CLASSES = ("high", "low", "mid")  # sorted, as training stores them
LEVEL = {"low": -1.0, "mid": 0.0, "high": 1.0}


def ok(result):
    assert result.exit_code == 0, f"exit {result.exit_code}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    return result


def one_line_error(result, exit_code: int, fragment: str) -> str:
    assert result.exit_code == exit_code, f"stdout: {result.stdout}\nstderr: {result.stderr}"
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert fragment in lines[0], lines[0]
    return lines[0]


def level_cases(n_per_class: int, seed: int, steps: int = 8, classes=tuple(LEVEL), offset: float = 0.0):
    """Rows (label, x_0..x_T-1): a noisy level per class; easy to learn."""
    rng = np.random.default_rng(seed)
    rows = []
    for label in classes:
        for _ in range(n_per_class):
            rows.append((label, LEVEL[label] + offset + 0.15 * rng.standard_normal(steps)))
    order = rng.permutation(len(rows))
    return [rows[i] for i in order]


def write_cases(path: Path, rows, sep: str = ",") -> Path:
    path.write_text("".join(sep.join([label] + [f"{v:.6f}" for v in x]) + "\n" for label, x in rows))
    return path


@pytest.fixture(scope="module")
def level_bundle(tmp_path_factory):
    """A GRU classifier trained on a UCR-layout CSV with an official test file, and its bundle."""
    root = tmp_path_factory.mktemp("level")
    train_file = write_cases(root / "levels_TRAIN.csv", level_cases(20, seed=0))
    test_file = write_cases(root / "levels_TEST.csv", level_cases(7, seed=1))
    run, bundle = root / "run", root / "bundle"
    ok(invoke("train", "--data", train_file, "--test-data", test_file, "--head", "classification", "--cell", "gru",
              "--hidden", 8, "--epochs", 25, "--out", run, "--quiet"))
    ok(invoke("export", run, "--out", bundle))
    return root, train_file, test_file, run, bundle


def runtime_labels(bundle: Path, x: np.ndarray) -> list[str]:
    from edgernn.runtime import load

    return [r["label"] for r in load(bundle).predict(x).records()]


# ---- 1. labels map through the spec's label list -------------------------------------------------


def test_evaluate_maps_labels_through_the_model_spec_when_the_test_file_lacks_classes(level_bundle, tmp_path):
    root, *_, bundle = level_bundle
    rows = level_cases(6, seed=5, classes=("low", "mid"))  # no "high": the file's own class list differs
    path = write_cases(tmp_path / "two_classes.csv", rows)
    x = np.stack([r[1] for r in rows])[:, :, None].astype(np.float32)
    predicted = runtime_labels(bundle, x)
    expected = float(np.mean([p == r[0] for p, r in zip(predicted, rows)]))  # compared by name, independently
    assert expected > 0.8  # the model did learn the levels; otherwise this test proves little
    report = json.loads(ok(invoke("evaluate", bundle, "--data", path, "--json")).stdout)
    assert report["scores"][0]["metrics"]["accuracy"] == pytest.approx(expected)

    one = write_cases(tmp_path / "one_class.csv", level_cases(5, seed=6, classes=("mid",)))
    report = json.loads(ok(invoke("evaluate", bundle, "--data", one, "--json")).stdout)
    x = np.stack([r[1] for r in level_cases(5, seed=6, classes=("mid",))])[:, :, None]
    assert report["scores"][0]["metrics"]["accuracy"] == pytest.approx(np.mean(np.array(runtime_labels(bundle, x)) == "mid"))


def test_evaluate_refuses_a_label_the_model_does_not_know(level_bundle, tmp_path):
    *_, bundle = level_bundle
    rows = level_cases(3, seed=7) + [("medium", np.zeros(8))]
    one_line_error(invoke("evaluate", bundle, "--data", write_cases(tmp_path / "unknown.csv", rows)), 2,
                   "class label 'medium' is not one the model was trained on (high, low, mid)")


def test_load_data_maps_numeric_labels_by_value(tmp_path):
    path = write_cases(tmp_path / "n.csv", [("2.0", np.ones(3)), ("10", np.zeros(3))])
    ds = load_data(path, head="classification", labels=("1", "2", "10"))
    assert ds.labels == ("1", "2", "10")
    np.testing.assert_array_equal(ds.y, [1, 2])


# ---- 2. what cannot be a classification set -------------------------------------------------------


def dated_series(path: Path, months: int = 96) -> Path:
    t = np.arange(months)
    values = 100 + 2 * t + 20 * np.sin(2 * np.pi * t / 12)
    stamps = [f"{1949 + m // 12}-{m % 12 + 1:02d}" for m in t]
    path.write_text("Date,Passengers\n" + "".join(f"{s},{v:.1f}\n" for s, v in zip(stamps, values)))
    return path


def test_a_dated_series_without_head_is_forecast_data_and_the_date_column_is_dropped(tmp_path):
    path = dated_series(tmp_path / "airline.csv")
    ds = load_data(path, window=12)
    assert ds.head == "forecast" and ds.features == 1 and ds.layout == "series-dated"
    assert ds.x[0, 0, 0] == pytest.approx(100.0)  # the first value, not the year
    result = ok(invoke("train", "--data", path, "--window", 12, "--hidden", 8, "--epochs", 2, "--out",
                       tmp_path / "run", "--quiet", "--json"))
    assert json.loads(result.stdout)["head"] == "forecast"
    assert "column 'Date' holds dates/times (1949-01 … 1956-12)" in result.stderr
    assert "the date column dropped" in result.stderr


def test_a_dated_series_refuses_head_classification(tmp_path):
    one_line_error(invoke("train", "--data", dated_series(tmp_path / "a.csv"), "--head", "classification",
                          "--out", tmp_path / "run"), 2, "pass --head forecast")


def test_a_dated_series_out_of_order_is_refused(tmp_path):
    path = tmp_path / "shuffled.csv"
    path.write_text("Date,Value\n2001-01,1\n2001-03,2\n2001-02,3\n2001-04,4\n")
    with pytest.raises(BadInputError, match="expected rows in time order, got 2001-02 after 2001-03 on line 4"):
        load_data(path)


def test_real_airline_csv_is_read_as_a_monthly_series():
    path = aeon_file("Airline/Airline.csv")
    if path is None:
        pytest.skip(MISSING)
    ds = load_data(path, window=24)
    assert ds.head == "forecast" and ds.n == 144 - 24
    assert ds.x[0, 0, 0] == 112.0 and ds.y[-1, 0] == 432.0  # Jan 1949 and Dec 1960 passengers


def test_classes_with_fewer_than_two_cases_are_refused(tmp_path):
    rows = level_cases(10, seed=0, classes=("low", "mid")) + [("high", np.ones(8))]
    message = one_line_error(invoke("train", "--data", write_cases(tmp_path / "rare.csv", rows), "--head",
                                    "classification", "--out", tmp_path / "run"), 2,
                             "class 'high' has 1 training case(s) (1 of 3 classes have fewer than 2)")
    assert "pass --head forecast" in message


def test_one_step_per_case_is_refused(tmp_path):
    path = tmp_path / "single.csv"
    path.write_text("".join(f"{'ab'[i % 2]},{i}\n" for i in range(20)))
    one_line_error(invoke("train", "--data", path, "--head", "classification", "--out", tmp_path / "run"), 2,
                   "each case is a single step, which is not a sequence to classify; if each row is a time step "
                   "of one series, pass --head forecast")


def test_test_classes_unseen_in_training_are_refused(tmp_path):
    train_file = write_cases(tmp_path / "t_TRAIN.csv", level_cases(6, seed=0, classes=("low", "mid")))
    test_file = write_cases(tmp_path / "t_TEST.csv", level_cases(2, seed=1))
    one_line_error(invoke("train", "--data", train_file, "--test-data", test_file, "--head", "classification",
                          "--out", tmp_path / "run"), 2, "class label 'high' is not one the model was trained on")


# ---- 3. run reads inputs as training read its file ------------------------------------------------


def test_run_reads_a_ucr_layout_file_like_training_did(level_bundle, tmp_path):
    root, train_file, test_file, run, bundle = level_bundle
    rows = level_cases(4, seed=9)
    tsv = write_cases(tmp_path / "cases.csv", rows)
    x = np.stack([r[1] for r in rows])[:, :, None].astype(np.float32)
    np.save(tmp_path / "windows.npy", x)
    from_csv = [json.loads(line) for line in ok(invoke("run", bundle, "--input", tsv)).stdout.splitlines()]
    from_npy = [json.loads(line) for line in ok(invoke("run", bundle, "--input", tmp_path / "windows.npy")).stdout.splitlines()]
    assert len(from_csv) == len(rows)
    assert [r["label"] for r in from_csv] == [r["label"] for r in from_npy]
    for a, b in zip(from_csv, from_npy):
        assert a["probabilities"] == pytest.approx(b["probabilities"], abs=1e-6)


def test_run_refuses_rows_without_the_target_column(level_bundle, tmp_path):
    *_, bundle = level_bundle
    path = tmp_path / "no_target.csv"
    path.write_text("".join(",".join(["0.1"] * 8) + "\n" for _ in range(3)))
    one_line_error(invoke("run", bundle, "--input", path), 2,
                   "expected 9 values per row (a target and 8 steps per row, as the model's training file")


def test_spec_records_the_training_layout(level_bundle):
    *_, run, _ = level_bundle
    spec = json.loads((run / "checkpoint.json").read_text())["spec"]
    assert spec["data_layout"] == "cases"


# ---- 4. official test files -----------------------------------------------------------------------


def test_train_with_test_data_scores_the_official_file_only(level_bundle):
    root, train_file, test_file, run, bundle = level_bundle
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["scored_on"] == "official test file"
    assert metrics["samples"]["test"] == 21  # 7 per class in levels_TEST.csv
    assert metrics["samples"]["train"] + metrics["samples"]["val"] == 60  # the whole training file, no test cut
    report = json.loads(ok(invoke("evaluate", bundle, "--json")).stdout)
    assert report["data"] == "levels_TEST.csv (official test file)" and report["samples"] == 21


def test_the_official_test_file_is_never_used_for_normalisation(tmp_path):
    train_file = write_cases(tmp_path / "o_TRAIN.csv", level_cases(8, seed=0))
    test_file = write_cases(tmp_path / "o_TEST.csv", level_cases(8, seed=1, offset=100.0))
    ok(invoke("train", "--data", train_file, "--test-data", test_file, "--head", "classification", "--hidden", 4,
              "--epochs", 1, "--val-fraction", 0.25, "--out", tmp_path / "run", "--quiet"))
    ckpt = json.loads((tmp_path / "run" / "checkpoint.json").read_text())
    assert abs(ckpt["spec"]["normalization"]["x_mean"][0]) < 1.0  # the test file's values are all near 100
    assert ckpt["metrics"]["samples"] == {"train": 18, "val": 6, "test": 24}


# ---- 5. defaults sized to the data -----------------------------------------------------------------


@pytest.mark.parametrize("n,batch,patience,epochs", [(30, 8, 30, 250), (100, 8, 16, 77), (1000, 64, 13, 63),
                                                      (100_000, 64, 8, 60)])
def test_batch_size_patience_and_epochs_follow_the_data_size(n, batch, patience, epochs):
    from edgernn.nn.train import TrainConfig, data_size_defaults

    config, notes = data_size_defaults(TrainConfig(), n)
    assert (config.batch_size, config.patience, config.epochs) == (batch, patience, epochs)
    steps = -(-n // batch)
    assert notes == [f"picked batch size {batch}, patience {patience} epochs ({steps} gradient steps per epoch), "
                     f"at most {epochs} epochs for {n} training cases"]
    kept, notes = data_size_defaults(TrainConfig(batch_size=16, patience=5, epochs=7), n)
    assert (kept.batch_size, kept.patience, kept.epochs, notes) == (16, 5, 7, [])


def test_train_says_what_it_picked(level_bundle):
    *_, run, _ = level_bundle
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["config"] == {"batch_size": 8, "patience": 29, "epochs": 25}
    assert "picked batch size 8, patience 29 epochs (7 gradient steps per epoch) for 51 training cases" \
        in metrics["notes"]


# ---- 9. the training file is recorded by absolute path, size and sha256 ----------------------------


def test_the_training_file_is_found_from_another_folder_and_moves_or_changes_are_named(tmp_path, monkeypatch):
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir(), elsewhere.mkdir()
    write_cases(work / "d.csv", level_cases(10, seed=0))
    monkeypatch.chdir(work)
    ok(invoke("train", "--data", "d.csv", "--head", "classification", "--hidden", 4, "--epochs", 1,
              "--out", "run", "--quiet"))
    ok(invoke("export", "run", "--out", "bundle"))
    source = json.loads((work / "run" / "checkpoint.json").read_text())["data"]
    assert source["path"] == str(work / "d.csv") and source["size"] == (work / "d.csv").stat().st_size
    assert len(source["sha256"]) == 64
    monkeypatch.chdir(elsewhere)
    ok(invoke("evaluate", work / "bundle"))
    write_cases(work / "d.csv", level_cases(10, seed=1))
    one_line_error(invoke("evaluate", work / "bundle"), 2, f"the training data {work / 'd.csv'} changed since training")
    (work / "d.csv").unlink()
    one_line_error(invoke("evaluate", work / "bundle"), 2,
                   f"the training data {work / 'd.csv'} is not there any more (moved or deleted since training)")


# ---- 10. no test split --------------------------------------------------------------------------------


def test_training_without_a_test_split_reports_on_validation(tmp_path):
    from edgernn.datasource import DataSource
    from edgernn.nn.train import TrainConfig, train

    path = write_cases(tmp_path / "d.csv", level_cases(10, seed=0))
    result = train(DataSource(path=str(path), head="classification", test_fraction=0.0),
                   TrainConfig(hidden_size=4, epochs=1), tmp_path / "run", progress=False)
    assert result.metrics["scored_on"] == "validation split (no test split)"
    assert result.metrics["samples"]["test"] == result.metrics["samples"]["val"] > 0
    assert (tmp_path / "run" / "confusion.png").is_file()


# ---- real archive files --------------------------------------------------------------------------------


def test_real_ts_file_with_percent_comments_reads():
    path = aeon_file("UnitTest/UnitTest_TRAIN.ts")
    if path is None:
        pytest.skip(MISSING)
    ds = load_data(path)
    assert ds.head == "classification" and ds.x.shape == (20, 24, 1) and ds.labels == ("1", "2")


def test_real_gunpoint_tsv_and_ts_read_the_same_cases():
    tsv, ts = aeon_file("GunPoint/GunPoint_TRAIN.tsv"), aeon_file("GunPoint/GunPoint_TRAIN.ts")
    if tsv is None:
        pytest.skip(MISSING)
    a, b = load_data(tsv, head="classification"), load_data(ts)
    assert a.labels == b.labels == ("1", "2")
    np.testing.assert_array_equal(a.y, b.y)
    np.testing.assert_allclose(a.x, b.x, atol=1e-6)


@pytest.mark.parametrize("stamps,season", [(["1991 Jul", "1991 Aug", "1991 Sep"], 12),
                                           (["1970 Q1", "1970 Q2", "1970 Q3"], 4),
                                           (["2021-05-01 00:00:00+00:00", "2021-05-01 00:30:00+00:00",
                                             "2021-05-01 01:00:00+00:00"], None)])
def test_named_months_quarters_and_times_are_date_columns(tmp_path, stamps, season):
    path = tmp_path / "s.csv"
    path.write_text("When,Value\n" + "".join(f"{s},{i + 1}\n" for i, s in enumerate(stamps)))
    ds = load_data(path, window=2)
    assert ds.head == "forecast" and ds.features == 1 and ds.season == season
    np.testing.assert_array_equal(ds.x[0, :, 0], [1, 2])


def test_a_leading_year_column_is_a_time_index_not_a_feature(tmp_path):
    path = tmp_path / "lynx.csv"
    path.write_text("Year,Trappings\n" + "".join(f"{1821 + i},{100 + 10 * (i % 10)}\n" for i in range(40)))
    for head in (None, "forecast"):
        ds = load_data(path, head=head, window=5)
        assert ds.head == "forecast" and ds.features == 1 and ds.y.shape == (35, 1)
        assert ds.x[0, 0, 0] == 100.0
        assert any("column 'Year' counts the time steps (1821 … 1860, one per row)" in n for n in ds.notes)
    plain = tmp_path / "noheader.csv"
    plain.write_text("".join(f"{i},{i * i}\n" for i in range(10)))
    with pytest.raises(BadInputError, match="cannot tell whether rows are time steps"):
        load_data(plain)  # no header naming time: still ambiguous without --head
    assert load_data(plain, head="forecast", window=2).features == 1


@pytest.mark.slow
def test_compare_scores_both_cells_on_the_official_test_file(tmp_path):
    train_file = write_cases(tmp_path / "c_TRAIN.csv", level_cases(8, seed=0))
    test_file = write_cases(tmp_path / "c_TEST.csv", level_cases(3, seed=1))
    result = ok(invoke("compare", "--data", train_file, "--test-data", test_file, "--head", "classification",
                       "--hidden", 4, "--epochs", 1, "--out", tmp_path / "cmp", "--json", "--quiet"))
    report = json.loads(result.stdout)
    assert "c_TEST.csv (official test file)" in report["data"]
