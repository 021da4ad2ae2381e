"""Tests for edgernn.data: splits, normalisation, model inputs (load_inputs), and no torch or onnx."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgernn import data
from edgernn.data import Dataset, load_inputs, make_builtin, split
from edgernn.errors import BadInputError
from edgernn.spec import Normalization
from helpers import write_csv_rows


# ---- splits -----------------------------------------------------------------------------------


def test_split_shuffled_disjoint_and_deterministic():
    ds = make_builtin("sum", n=200)
    a, b, c = split(ds, seed=1), split(ds, seed=1), split(ds, seed=2)
    assert (a.train.n, a.val.n, a.test.n) == (140, 30, 30)
    rows = {tuple(row) for part in (a.train, a.val, a.test) for row in part.x[:, :, 0]}
    assert len(rows) == 200  # every sample once
    np.testing.assert_array_equal(a.test.x, b.test.x)
    assert not np.array_equal(a.test.x, c.test.x)
    np.testing.assert_allclose(a.train.y[:, 0], a.train.x.sum(axis=(1, 2)), rtol=1e-5)  # pairs kept together


def test_split_classification_is_stratified():
    x = np.zeros((100, 2, 1))
    y = np.array([0] * 80 + [1] * 20)
    s = split(Dataset(x, y, "classification", labels=("a", "b")), val_fraction=0.2, test_fraction=0.2)
    np.testing.assert_array_equal(np.bincount(s.test.y), [16, 4])
    np.testing.assert_array_equal(np.bincount(s.val.y), [16, 4])
    assert s.train.labels == ("a", "b")


def test_split_forecast_is_chronological_with_gaps():
    series = np.arange(300.0)[:, None]
    from edgernn.data.windowing import make_windows

    x, y = make_windows(series, window=10)
    s = split(Dataset(x, y, "forecast"), val_fraction=0.2, test_fraction=0.2)
    assert s.train.y.max() < s.val.x.min() and s.val.y.max() < s.test.x.min()
    assert s.val.x[0, 0, 0] - s.train.x[-1, 0, 0] == 10 + 1  # a gap of `window` windows
    assert (s.train.n, s.val.n, s.test.n) == (162, 54, 54)  # 290 windows - 2 gaps of 10, 60/20/20
    assert any("chronologically" in note for note in s.train.notes)


def test_split_needs_enough_samples():
    ds = make_builtin("sum", n=9)
    with pytest.raises(BadInputError, match="expected at least 10 samples to split into train/val/test, got 9"):
        split(ds)
    with pytest.raises(BadInputError, match="val_fraction \\+ test_fraction must leave data to train on"):
        split(make_builtin("sum", n=50), val_fraction=0.5, test_fraction=0.5)


# ---- normalisation ----------------------------------------------------------------------------


def test_normalization_is_fitted_on_train_only():
    s = split(make_builtin("sine", n=500), seed=0)
    norm = data.fit_normalization(s.train)
    train_x = s.train.x.astype(np.float64)[:, :, 0]
    assert norm.x_mean == pytest.approx([train_x.mean()], rel=1e-9)
    assert norm.x_std == pytest.approx([train_x.std()], rel=1e-9)
    assert norm.y_mean == pytest.approx([s.train.y.astype(np.float64).mean()], rel=1e-9)
    all_x = make_builtin("sine", n=500).x.astype(np.float64)
    assert norm.x_mean[0] != pytest.approx(all_x.mean(), rel=1e-6)


def test_normalize_round_trip_and_constant_features():
    x = np.stack([np.full((20, 5), 3.0), np.arange(100.0).reshape(20, 5)], axis=-1)  # feature 0 constant
    ds = Dataset(x, np.arange(40.0).reshape(20, 2), "regression")
    norm = data.fit_normalization(ds)
    assert norm.x_std[0] == 1.0 and norm.x_mean[0] == 3.0
    z = data.normalize_x(ds.x, norm)
    assert z.dtype == np.float32 and np.all(z[:, :, 0] == 0)
    assert abs(z[:, :, 1].mean()) < 1e-5 and abs(z[:, :, 1].std() - 1) < 1e-5
    y = data.normalize_y(ds.y, norm)
    np.testing.assert_allclose(data.denormalize_y(y, norm), ds.y, rtol=1e-5, atol=1e-4)
    with pytest.raises(BadInputError, match=r"expected input with 2 features on the last axis, got shape \(4, 3\)"):
        data.normalize_x(np.zeros((4, 3)), norm)


def test_classification_normalization_leaves_y_alone():
    ds = make_builtin("bands", n=100)
    norm = data.fit_normalization(ds)
    assert norm.y_mean == () and norm.y_std == ()
    np.testing.assert_array_equal(data.normalize_y(ds.y, norm), ds.y)
    assert Normalization.from_dict({"x_mean": norm.x_mean, "x_std": norm.x_std}) == norm


# ---- load_inputs ------------------------------------------------------------------------------


def test_load_inputs_npy_shapes(tmp_path):
    cases = {
        "3d.npy": (np.zeros((4, 6, 3)), 3, (4, 6, 3)),
        "one_window.npy": (np.zeros((6, 3)), 3, (1, 6, 3)),
        "univariate.npy": (np.zeros((4, 6)), 1, (4, 6, 1)),
        "t_by_1.npy": (np.zeros((6, 1)), 1, (1, 6, 1)),
        "flat.npy": (np.zeros(6), 1, (1, 6, 1)),
    }
    for name, (array, input_size, shape) in cases.items():
        np.save(tmp_path / name, array)
        x = load_inputs(tmp_path / name, input_size=input_size)
        assert x.shape == shape and x.dtype == np.float32, name


def test_load_inputs_csv_is_time_major(tmp_path):
    path = write_csv_rows(tmp_path / "w.csv", [list(range(6)), list(range(6, 12))], header=[f"c{i}" for i in range(6)])
    x = load_inputs(path, input_size=2, window=3)
    assert x.shape == (2, 3, 2)
    np.testing.assert_array_equal(x[0], [[0, 1], [2, 3], [4, 5]])
    np.testing.assert_array_equal(x[1, 2], [10, 11])


def test_load_inputs_errors(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((4, 8)))
    with pytest.raises(BadInputError, match=r"expected input of shape \(N, T, 3\), got \(4, 8\)"):
        load_inputs(tmp_path / "a.npy", input_size=3)
    np.save(tmp_path / "b.npy", np.zeros((2, 5, 3)))
    with pytest.raises(BadInputError, match=r"expected input of shape \(N, 4, 3\), got \(2, 5, 3\)"):
        load_inputs(tmp_path / "b.npy", input_size=3, window=4)
    bad = np.zeros((2, 5, 3))
    bad[1, 4, 2] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    with pytest.raises(BadInputError, match=r"got nan at index \(1, 4, 2\)"):
        load_inputs(tmp_path / "nan.npy", input_size=3)
    write_csv_rows(tmp_path / "windows.csv", [list(range(20)), list(range(20)), list(range(20)), list(range(19))])
    with pytest.raises(
        BadInputError, match=r"windows.csv: expected 20 values per row \(window 20 × 1 feature\), got 19 on line 4"
    ):
        load_inputs(tmp_path / "windows.csv", input_size=1, window=20)
    write_csv_rows(tmp_path / "odd.csv", [list(range(7))])
    with pytest.raises(BadInputError, match="expected a multiple of 2 values per row"):
        load_inputs(tmp_path / "odd.csv", input_size=2)
    (tmp_path / "e.csv").write_text("\n\n")
    with pytest.raises(BadInputError, match="got no data rows"):
        load_inputs(tmp_path / "e.csv", input_size=1)
    with pytest.raises(BadInputError, match="no such file"):
        load_inputs(tmp_path / "missing.npy", input_size=1)


def test_data_package_does_not_import_torch_or_onnx():
    code = "import sys, edgernn.data; print(any(m in sys.modules for m in ('torch', 'onnx', 'onnxruntime')))"
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root)
    assert out.stdout.strip() == "False"
