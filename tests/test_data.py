"""Tests for edgernn.data: built-in tasks, readers, windowing (splits, normalisation and inputs:
test_data_splits.py)."""

from __future__ import annotations

import numpy as np
import pytest

from edgernn import data
from edgernn.data import Dataset, load_data, make_builtin
from edgernn.errors import BadInputError
from helpers import write_csv_rows


# ---- built-in tasks ---------------------------------------------------------------------------


def test_builtin_tasks_are_described_and_have_the_promised_shapes():
    assert set(data.BUILTIN_TASKS) == {"sum", "sine", "bands"}
    for task in data.BUILTIN_TASKS:
        ds = make_builtin(task, n=64, window=12)
        assert ds.x.shape == (64, 12, 1) and ds.x.dtype == np.float32
        assert (ds.n, ds.window, ds.features) == (64, 12, 1)
    assert make_builtin("bands", n=64).y.dtype == np.int64


def test_sum_targets_are_the_sum_of_the_window():
    ds = make_builtin("sum", n=100, window=15)
    assert ds.head == "regression" and ds.y.shape == (100, 1)
    np.testing.assert_allclose(ds.y[:, 0], ds.x.astype(np.float64).sum(axis=(1, 2)), rtol=1e-5)
    assert 0.0 <= ds.x.min() and ds.x.max() <= 1.0


def test_sine_targets_are_the_next_value_of_one_series():
    ds = make_builtin("sine", n=200, window=10)
    assert ds.head == "forecast" and ds.y.shape == (200, 1)
    np.testing.assert_array_equal(ds.y[:-1, 0], ds.x[1:, -1, 0])  # window i+1 ends where i's target is
    np.testing.assert_array_equal(ds.x[1:, :-1, 0], ds.x[:-1, 1:, 0])  # stride 1


def test_bands_classes_are_balanced_and_labelled():
    ds = make_builtin("bands", n=400)
    assert ds.head == "classification" and ds.output_size == 4 and len(ds.labels) == 4
    np.testing.assert_array_equal(np.bincount(ds.y), [100, 100, 100, 100])


def test_bands_frequency_separates_classes_on_average():
    ds = make_builtin("bands", n=800, window=64)
    spectrum = np.abs(np.fft.rfft(ds.x[:, :, 0] - ds.x[:, :, 0].mean(axis=1, keepdims=True), axis=1))
    peak = spectrum.argmax(axis=1)
    mean_peak = [peak[ds.y == k].mean() for k in range(4)]
    assert mean_peak == sorted(mean_peak)


@pytest.mark.parametrize("task", ["sum", "sine", "bands"])
def test_builtin_is_deterministic_from_the_seed(task):
    a, b, c = make_builtin(task, seed=3), make_builtin(task, seed=3), make_builtin(task, seed=4)
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.y, b.y)
    assert not np.array_equal(a.x, c.x)


def test_builtin_rejects_unknown_task_and_bad_sizes():
    with pytest.raises(BadInputError, match="unknown task 'nope'; built-in tasks: sum, sine, bands"):
        make_builtin("nope")
    with pytest.raises(BadInputError, match="n must be a positive integer"):
        make_builtin("sum", n=0)


# ---- Dataset ----------------------------------------------------------------------------------


def test_dataset_coerces_dtypes_and_checks_shapes():
    ds = Dataset(np.zeros((3, 4, 2), dtype=np.float64), np.arange(3.0), "regression")
    assert ds.x.dtype == np.float32 and ds.y.shape == (3, 1) and ds.y.dtype == np.float32
    assert ds.output_size == 1
    with pytest.raises(BadInputError, match=r"expected x of shape \(N, T, F\), got \(3, 4\)"):
        Dataset(np.zeros((3, 4)), np.zeros(3), "regression")
    with pytest.raises(BadInputError, match="expected 3 targets"):
        Dataset(np.zeros((3, 4, 1)), np.zeros(2), "regression")
    with pytest.raises(BadInputError, match="class indices in 0..1"):
        Dataset(np.zeros((3, 4, 1)), np.array([0, 1, 2]), "classification", labels=("a", "b"))
    x = np.zeros((3, 4, 1))
    x[1, 2, 0] = np.nan
    with pytest.raises(BadInputError, match=r"expected finite x, got nan at index \(1, 2, 0\)"):
        Dataset(x, np.zeros(3), "regression")


# ---- forecast windowing -----------------------------------------------------------------------


@pytest.mark.parametrize("window,horizon,stride", [(5, 1, 1), (4, 3, 2), (7, 2, 5)])
def test_forecast_windows_follow_index_arithmetic(tmp_path, window, horizon, stride):
    series = np.arange(50, dtype=np.float64).reshape(25, 2)  # row t = (2t, 2t + 1)
    path = write_csv_rows(tmp_path / "series.csv", series.tolist(), header=["a", "b"])
    ds = load_data(path, head="forecast", window=window, horizon=horizon, stride=stride)
    starts = np.arange(0, 25 - window - horizon + 1, stride)
    assert ds.x.shape == (len(starts), window, 2) and ds.y.shape == (len(starts), 2)
    for i, start in enumerate(starts):
        np.testing.assert_array_equal(ds.x[i], series[start : start + window])
        np.testing.assert_array_equal(ds.y[i], series[start + window - 1 + horizon])


def test_forecast_from_npy_1d_is_inferred_and_default_window_is_noted(tmp_path):
    np.save(tmp_path / "s.npy", np.arange(100.0))
    ds = load_data(tmp_path / "s.npy")
    assert ds.head == "forecast" and ds.window == 32 and ds.features == 1
    assert ds.y[0, 0] == 32.0 and ds.n == 100 - 32
    assert any("32 steps" in note for note in ds.notes)


def test_forecast_from_npy_2d(tmp_path):
    np.save(tmp_path / "s.npy", np.arange(60.0).reshape(20, 3))
    ds = load_data(tmp_path / "s.npy", head="forecast", window=4, horizon=2)
    np.testing.assert_array_equal(ds.y[0], [15.0, 16.0, 17.0])  # row 5 = 4 - 1 + 2


def test_window_longer_than_series(tmp_path):
    np.save(tmp_path / "s.npy", np.arange(10.0))
    with pytest.raises(BadInputError, match="series has 10 steps, fewer than window 10 \\+ horizon 1"):
        load_data(tmp_path / "s.npy", window=10)


# ---- CSV sequences ----------------------------------------------------------------------------


def test_csv_classification_with_string_labels_and_no_header(tmp_path):
    rows = [["dog", 1, 2, 3], ["cat", 4, 5, 6], ["dog", 7, 8, 9], ["bird", 0, 0, 1]]
    ds = load_data(write_csv_rows(tmp_path / "c.csv", rows))
    assert ds.head == "classification" and ds.labels == ("bird", "cat", "dog")
    np.testing.assert_array_equal(ds.y, [2, 1, 2, 0])
    np.testing.assert_array_equal(ds.x[1, :, 0], [4, 5, 6])
    assert any("inferred --head classification" in note for note in ds.notes)


def test_csv_integer_labels_sort_numerically(tmp_path):
    rows = [[10, 1, 2], [2, 3, 4], [10, 5, 6], [1, 7, 8]]
    ds = load_data(write_csv_rows(tmp_path / "c.csv", rows, header=["label", "t0", "t1"]), head="classification")
    assert ds.labels == ("1", "2", "10")
    np.testing.assert_array_equal(ds.y, [2, 1, 2, 0])


def test_csv_regression_one_sequence_per_row(tmp_path):
    rows = [[0.5, 1, 2, 3], [1.5, 4, 5, 6]]
    ds = load_data(write_csv_rows(tmp_path / "r.csv", rows), head="regression", window=3)
    np.testing.assert_array_equal(ds.y, [[0.5], [1.5]])
    np.testing.assert_array_equal(ds.x[:, :, 0], [[1, 2, 3], [4, 5, 6]])


def test_tsv_is_tab_separated(tmp_path):
    (tmp_path / "r.tsv").write_text("1\t2\t3\n4\t5\t6\n")
    ds = load_data(tmp_path / "r.tsv", head="regression")
    np.testing.assert_array_equal(ds.y[:, 0], [1, 4])


# ---- NPY / NPZ sequences ----------------------------------------------------------------------


def test_npy_2d_first_column_is_the_target(tmp_path):
    array = np.array([[1, 0.1, 0.2], [0, 0.3, 0.4], [1, 0.5, 0.6]])
    np.save(tmp_path / "a.npy", array)
    ds = load_data(tmp_path / "a.npy", head="classification")
    assert ds.labels == ("0", "1")
    np.testing.assert_array_equal(ds.y, [1, 0, 1])
    np.testing.assert_allclose(ds.x[:, :, 0], array[:, 1:])


def test_npz_multivariate_classification_with_labels(tmp_path):
    x = np.random.default_rng(0).normal(size=(6, 5, 3))
    np.savez(tmp_path / "d.npz", x=x, y=np.array([0, 1, 2, 0, 1, 2]), labels=np.array(["lo", "mid", "hi"]))
    ds = load_data(tmp_path / "d.npz")
    assert ds.head == "classification" and ds.labels == ("lo", "mid", "hi")
    np.testing.assert_allclose(ds.x, x.astype(np.float32))


def test_npz_string_labels_and_float_regression_inferred(tmp_path):
    np.savez(tmp_path / "c.npz", x=np.zeros((3, 4)), y=np.array(["b", "a", "b"]))
    ds = load_data(tmp_path / "c.npz")
    assert ds.labels == ("a", "b") and ds.x.shape == (3, 4, 1)
    np.testing.assert_array_equal(ds.y, [1, 0, 1])
    np.savez(tmp_path / "r.npz", x=np.zeros((3, 4, 2)), y=np.arange(6.0).reshape(3, 2))
    reg = load_data(tmp_path / "r.npz")
    assert reg.head == "regression" and reg.output_size == 2
    assert any("inferred --head regression" in note for note in reg.notes)


# ---- UCR/UEA .ts ------------------------------------------------------------------------------

UNIVARIATE_TS = """# a comment
@problemName toy
@timeStamps false
@univariate true
@equalLength true
@seriesLength 4
@classLabel true up down
@data
1,2,3,4:up
4,3,2,1:down
0.5,1.5,2.5,3.5:up
"""

MULTIVARIATE_TS = """@problemName toy2
@timeStamps false
@univariate false
@dimensions 2
@equalLength false
@targetLabel true
@data
1,2,3:10,20,30:0.5
4,5:40,50:1.5
"""


def test_ts_univariate_classification(tmp_path):
    (tmp_path / "u.ts").write_text(UNIVARIATE_TS)
    ds = load_data(tmp_path / "u.ts")
    assert ds.head == "classification" and ds.labels == ("up", "down") and ds.name == "u"
    assert ds.x.shape == (3, 4, 1)
    np.testing.assert_array_equal(ds.y, [0, 1, 0])
    np.testing.assert_array_equal(ds.x[1, :, 0], [4, 3, 2, 1])
    assert ds.notes == ()


def test_ts_multivariate_regression_pads_at_the_end_and_keeps_true_lengths(tmp_path):
    (tmp_path / "m.ts").write_text(MULTIVARIATE_TS)
    ds = load_data(tmp_path / "m.ts")
    assert ds.head == "regression" and ds.x.shape == (2, 3, 2)
    np.testing.assert_array_equal(ds.x[0], [[1, 10], [2, 20], [3, 30]])
    np.testing.assert_array_equal(ds.x[1], [[4, 40], [5, 50], [0, 0]])
    np.testing.assert_array_equal(ds.lengths, [3, 2])
    np.testing.assert_allclose(ds.y[:, 0], [0.5, 1.5])
    assert any("variable length: 1 of 2 series shorter than the longest (2..3 steps)" in n for n in ds.notes)


@pytest.mark.parametrize(
    "body,fragment",
    [
        ("1,?,3,4:up\n", "got '?' on line 9 (dimension 1); fill missing values first"),
        ("1,2,3,4:sideways\n", "got 'sideways' on line 9"),
        ("1,2,x,4:up\n", "expected a number, got 'x' on line 9"),
        ("1,2:3,4:up\n", "header says @univariate true, got 2 dimensions"),
    ],
)
def test_ts_bad_cases(tmp_path, body, fragment):
    header = UNIVARIATE_TS.split("@data\n")[0] + "@data\n"
    (tmp_path / "bad.ts").write_text(header + body)
    with pytest.raises(BadInputError) as info:
        load_data(tmp_path / "bad.ts")
    assert fragment in str(info.value)


def test_ts_head_mismatch_and_unlabelled(tmp_path):
    (tmp_path / "u.ts").write_text(UNIVARIATE_TS)
    with pytest.raises(BadInputError, match="declares classification targets, got --head regression"):
        load_data(tmp_path / "u.ts", head="regression")
    (tmp_path / "n.ts").write_text("@problemName x\n@data\n1,2,3\n")
    with pytest.raises(BadInputError, match="'@classLabel true <names>' or '@targetLabel true'"):
        load_data(tmp_path / "n.ts")


# ---- bad inputs -------------------------------------------------------------------------------


def test_bad_files(tmp_path):
    with pytest.raises(BadInputError, match="nope.csv: no such file"):
        load_data(tmp_path / "nope.csv")
    (tmp_path / "d.parquet").write_text("x")
    with pytest.raises(BadInputError, match="expected one of .csv, .tsv, .npy, .npz, .ts, got extension '.parquet'"):
        load_data(tmp_path / "d.parquet")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(BadInputError, match="empty.csv: file is empty"):
        load_data(tmp_path / "empty.csv", head="forecast")
    (tmp_path / "header_only.csv").write_text("a,b,c\n\n")
    with pytest.raises(BadInputError, match="got no data rows"):
        load_data(tmp_path / "header_only.csv", head="forecast")


def test_bad_csv_contents(tmp_path):
    write_csv_rows(tmp_path / "ragged.csv", [[1, 2, 3], [4, 5, 6], [7, 8], [1, 1, 1]])
    with pytest.raises(BadInputError, match=r"expected 3 values per row \(target \+ 2 steps, as on line 1\), got 2 on line 3"):
        load_data(tmp_path / "ragged.csv", head="regression")
    write_csv_rows(tmp_path / "text.csv", [[1, 2], [3, "abc"], [5, 6]], header=["a", "b"])
    with pytest.raises(BadInputError, match="expected a number, got 'abc' on line 3, column 2"):
        load_data(tmp_path / "text.csv", head="forecast")
    write_csv_rows(tmp_path / "nan.csv", [[1, 2], [3, 4], [5, "nan"]])
    with pytest.raises(BadInputError, match="expected finite numbers, got 'nan' on line 3, column 2"):
        load_data(tmp_path / "nan.csv", head="forecast", window=1)
    write_csv_rows(tmp_path / "numbers.csv", [[1, 2], [3, 4]])
    with pytest.raises(BadInputError, match="cannot tell whether rows are time steps.*pass --head"):
        load_data(tmp_path / "numbers.csv")
    write_csv_rows(tmp_path / "one_class.csv", [["a", 1, 2], ["a", 3, 4]])
    with pytest.raises(BadInputError, match="expected at least 2 classes, got only 'a'"):
        load_data(tmp_path / "one_class.csv")
    write_csv_rows(tmp_path / "seq.csv", [[1, 2, 3], [0, 4, 5]])
    with pytest.raises(BadInputError, match="sequences have 2 steps, got --window 5"):
        load_data(tmp_path / "seq.csv", head="classification", window=5)
    with pytest.raises(BadInputError, match="--horizon and --stride apply to --head forecast only"):
        load_data(tmp_path / "seq.csv", head="classification", horizon=3)


def test_bad_arrays(tmp_path):
    np.save(tmp_path / "cube.npy", np.zeros((2, 3, 4)))
    with pytest.raises(BadInputError, match=r"cannot tell whether an array of shape \(2, 3, 4\)"):
        load_data(tmp_path / "cube.npy")
    with pytest.raises(BadInputError, match=r"expected a series of shape \(T,\) or \(T, F\) to forecast, got \(2, 3, 4\)"):
        load_data(tmp_path / "cube.npy", head="forecast")
    series = np.arange(20.0)
    series[7] = np.inf
    np.save(tmp_path / "inf.npy", series)
    with pytest.raises(BadInputError, match=r"got inf at index \(7,\)"):
        load_data(tmp_path / "inf.npy")
    np.savez(tmp_path / "nox.npz", a=np.zeros(3))
    with pytest.raises(BadInputError, match=r"expected arrays 'x' and 'y', got \['a'\]"):
        load_data(tmp_path / "nox.npz")
    np.savez(tmp_path / "short.npz", x=np.zeros((4, 3)), y=np.zeros(3))
    with pytest.raises(BadInputError, match=r"expected y of shape \(4,\) or \(4, O\), got \(3,\)"):
        load_data(tmp_path / "short.npz")
    np.savez(tmp_path / "frac.npz", x=np.zeros((3, 3)), y=np.array([0.0, 0.5, 1.0]))
    with pytest.raises(BadInputError, match="class labels that are names or integers, got 0.5"):
        load_data(tmp_path / "frac.npz", head="classification")
    (tmp_path / "junk.npy").write_bytes(b"not numpy at all")
    with pytest.raises(BadInputError, match="junk.npy: expected a NumPy .npy file of plain arrays"):
        load_data(tmp_path / "junk.npy")


def test_bad_options():
    with pytest.raises(BadInputError, match="head must be one of regression, forecast, classification, got 'bogus'"):
        load_data("x.csv", head="bogus")
    with pytest.raises(BadInputError, match="window must be a positive integer, got 0"):
        load_data("x.csv", window=0)
