"""Data larger than memory: memory-mapped .npy/.npz, windows cut per batch, statistics in one streaming pass."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgernn import data
from edgernn.checkpoint import load_checkpoint
from edgernn.data.lazy import lazy_splits
from helpers import invoke

ROOT = Path(__file__).resolve().parents[1]


def norm_values(norm) -> np.ndarray:
    return np.array(norm.x_mean + norm.x_std + norm.y_mean + norm.y_std)


def assert_same_splits(in_memory, lazy) -> None:
    for part in ("train", "val", "test"):
        a, b = getattr(in_memory, part), getattr(lazy, part)
        assert np.array_equal(a.x, np.asarray(b.x)), part
        assert np.array_equal(a.y, np.asarray(b.y, a.y.dtype)), part
        assert (a.head, a.labels, a.notes, a.name) == (b.head, b.labels, b.notes, b.name), part
    expected = norm_values(data.fit_normalization(in_memory.train))
    np.testing.assert_allclose(norm_values(lazy.normalization), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("window,horizon,stride", [(20, 1, 1), (7, 3, 4)])
def test_mapped_series_gives_the_in_memory_windows_splits_and_normalisation(tmp_path, window, horizon, stride):
    rng = np.random.default_rng(1)
    series = rng.normal(size=(2000, 3)) * [1.0, 5.0, 0.1] + [0.0, 3.0, -2.0]  # float64 on disk
    np.save(tmp_path / "s.npy", series)
    in_memory = data.split(data.load_data(tmp_path / "s.npy", head="forecast", window=window, horizon=horizon,
                                          stride=stride))
    lazy = lazy_splits(tmp_path / "s.npy", head="forecast", window=window, horizon=horizon, stride=stride)
    assert isinstance(lazy.train.x.source, np.memmap)
    assert_same_splits(in_memory, lazy)
    np.testing.assert_array_equal(lazy.test.x[:, -1, :2], in_memory.test.x[:, -1, :2])  # persistence baseline


@pytest.mark.parametrize("save,note", [(np.savez, False), (np.savez_compressed, True)])
def test_mapped_npz_classes(tmp_path, save, note):
    rng = np.random.default_rng(2)
    save(tmp_path / "c.npz", x=rng.normal(size=(300, 12, 2)).astype(np.float32), y=rng.integers(0, 3, 300),
         labels=np.array(["a", "b", "c"]))
    lazy = lazy_splits(tmp_path / "c.npz")
    assert isinstance(lazy.train.x.source, np.memmap)
    compressed = [n for n in lazy.train.notes if "compressed" in n]
    assert bool(compressed) == note
    in_memory = data.split(data.load_data(tmp_path / "c.npz"))
    object.__setattr__(lazy.train, "notes", tuple(n for n in lazy.train.notes if "compressed" not in n))
    for part in ("val", "test"):
        object.__setattr__(getattr(lazy, part), "notes", getattr(in_memory, part).notes)
    assert_same_splits(in_memory, lazy)


def test_mapped_npy_regression_rows(tmp_path):
    np.save(tmp_path / "r.npy", np.random.default_rng(3).normal(size=(200, 11)))
    assert_same_splits(data.split(data.load_data(tmp_path / "r.npy", head="regression")),
                       lazy_splits(tmp_path / "r.npy", head="regression"))


def test_mapped_training_equals_in_memory_training(tmp_path):
    t = np.arange(3000)
    np.save(tmp_path / "s.npy", np.stack([np.sin(t * 0.05), np.cos(t * 0.031)], axis=1).astype(np.float32))
    options = ["--data", tmp_path / "s.npy", "--head", "forecast", "--window", 12, "--hidden", 8, "--epochs", 2,
               "--quiet", "--json"]
    mapped = invoke("train", *options, "--mmap", "--out", tmp_path / "mapped")
    loaded = invoke("train", *options, "--out", tmp_path / "loaded")
    assert mapped.exit_code == 0 and loaded.exit_code == 0, mapped.output + loaded.output
    a, b = load_checkpoint(tmp_path / "mapped"), load_checkpoint(tmp_path / "loaded")
    assert max(float(np.abs(a.weights[k] - b.weights[k]).max()) for k in a.weights) <= 1e-6
    assert a.data["mmap"] is True and b.data["mmap"] is False
    flat = lambda d: {f"{k}/{m}": v for k, ms in d["baselines"].items() for m, v in ms.items()} | d["test"]  # noqa: E731
    got, expected = flat(json.loads(mapped.stdout)), flat(json.loads(loaded.stdout))
    assert got.keys() == expected.keys()
    for name, value in got.items():
        assert value == pytest.approx(expected[name], rel=1e-5), name


def test_mmap_errors_are_one_line(tmp_path):
    result = invoke("train", "--task", "sum", "--mmap", "--out", tmp_path / "run", "--quiet")
    assert result.exit_code == 2
    assert result.stderr == "error: --mmap reads a .npy or .npz file memory-mapped; built-in tasks are made in memory\n"
    series = np.ones((500, 2), np.float32)
    series[321, 1] = np.nan
    np.save(tmp_path / "bad.npy", series)
    result = invoke("train", "--data", tmp_path / "bad.npy", "--head", "forecast", "--mmap", "--out",
                    tmp_path / "run", "--quiet")
    assert result.exit_code == 2
    assert result.stderr == (f"error: {tmp_path / 'bad.npy'}: expected finite values, got a NaN or inf at index "
                             "(321, 1); fill or drop missing values first\n")


def _write_series(path: Path, steps: int) -> None:
    """A float32 (steps, 1) .npy written in chunks, never whole in memory."""
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(steps, 1))
    for start in range(0, steps, 1 << 22):
        stop = min(start + (1 << 22), steps)
        out[start:stop, 0] = np.sin(np.arange(start, stop) * 1e-3)
    out.flush()
    del out


def _probe(*args) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "rss_probe.py"), *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads RSS from /proc (Linux)")
@pytest.mark.slow
def test_a_mapped_file_larger_than_the_memory_budget_trains_in_bounded_memory(tmp_path):
    budget_mib, steps = 100, 50_000_000  # a 200 MB file
    big, small = tmp_path / "big.npy", tmp_path / "small.npy"
    try:
        _write_series(big, steps)
        _write_series(small, 50_000)
        assert big.stat().st_size > 2 * budget_mib * 2**20 * 0.95
        # 1 epoch over 25 000 windows, but the statistics pass and the splits read the whole file
        mapped = _probe(big, "forecast", 16, 2000, tmp_path / "run", "--warm-up", small)
        assert mapped["RssAnon_growth_mib"] < budget_mib, mapped
        # The control: the in-memory path holds the series several times over, far above the budget.
        loaded = _probe(big, "forecast", 16, 2000, tmp_path / "run2", "--in-memory")
        assert loaded["RssAnon_growth_mib"] > 2 * budget_mib, loaded
    finally:
        big.unlink(missing_ok=True)
        small.unlink(missing_ok=True)


def test_mapped_npz_with_loader_workers_trains_as_in_memory(tmp_path):
    rng = np.random.default_rng(4)
    np.savez(tmp_path / "c.npz", x=rng.normal(size=(200, 10, 2)).astype(np.float32), y=rng.integers(0, 3, 200))
    options = ["--data", tmp_path / "c.npz", "--hidden", 8, "--epochs", 2, "--batch-size", 32, "--quiet"]
    assert invoke("train", *options, "--mmap", "--workers", 2, "--out", tmp_path / "mapped").exit_code == 0
    assert invoke("train", *options, "--out", tmp_path / "loaded").exit_code == 0
    a, b = load_checkpoint(tmp_path / "mapped"), load_checkpoint(tmp_path / "loaded")
    assert max(float(np.abs(a.weights[k] - b.weights[k]).max()) for k in a.weights) == 0.0
    assert a.metrics["hardware"]["workers"] == 2
