"""tools/archive_bench.py's own 1-NN DTW against a plain double loop (the benchmark's reference column)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
from archive_bench import dtw_distances  # noqa: E402


def plain_dtw(a: np.ndarray, b: np.ndarray) -> float:
    D = np.full((len(a) + 1, len(b) + 1), np.inf)
    D[0, 0] = 0.0
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            D[i, j] = ((a[i - 1] - b[j - 1]) ** 2).sum() + min(D[i - 1, j], D[i, j - 1], D[i - 1, j - 1])
    return D[-1, -1]


def test_vectorised_dtw_equals_the_double_loop_at_true_lengths():
    rng = np.random.default_rng(0)
    la, lb = rng.integers(1, 9, size=5), rng.integers(1, 11, size=4)
    a, b = np.zeros((5, 8, 2)), np.zeros((4, 10, 2))
    for x, lengths in ((a, la), (b, lb)):
        for i, n in enumerate(lengths):
            x[i, :n] = rng.standard_normal((n, 2))
    got = dtw_distances(a, la, b, lb, block=2)
    want = [[plain_dtw(a[i, : la[i]], b[j, : lb[j]]) for j in range(4)] for i in range(5)]
    np.testing.assert_allclose(got, want, rtol=1e-12)
