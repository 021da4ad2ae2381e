"""Shared fixtures: small models and bundles, built once per test session.

- ``trained_run`` / ``trained_bundle``: an LSTM really trained (2 epochs) on the built-in ``sum``
  task and exported the way a user does it; the end-to-end path.
- ``make_bundle(spec, seed)``: a bundle exported from a torch model with random weights
  (``torch.manual_seed(seed)``), cached per (spec, seed). Specs below use odd sizes, several
  features and a non-trivial normalisation so that a transposed matrix or a skipped
  normalisation cannot hide.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from edgernn.spec import ModelSpec
from helpers import random_weights


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> Path:
    from edgernn.datasource import DataSource
    from edgernn.nn.train import TrainConfig, train

    out = tmp_path_factory.mktemp("runs") / "sum-lstm"
    train(DataSource(task="sum", n=400), TrainConfig(epochs=2, hidden_size=8), out, progress=False)
    return out


@pytest.fixture(scope="session")
def trained_bundle(trained_run, tmp_path_factory) -> Path:
    from edgernn.export import export_checkpoint

    out = tmp_path_factory.mktemp("bundles") / "sum-lstm"
    export_checkpoint(trained_run, out)
    return out


@pytest.fixture(scope="session")
def make_bundle(tmp_path_factory) -> Callable[..., Path]:
    """``make_bundle(spec, seed=0)`` → a validated bundle folder; do not modify it (copy it first)."""
    from edgernn.export import export_bundle

    root = tmp_path_factory.mktemp("random-bundles")
    cache: dict[tuple[ModelSpec, int], Path] = {}

    def make(spec: ModelSpec, seed: int = 0) -> Path:
        key = (spec, seed)
        if key not in cache:
            out = root / f"b{len(cache)}-{spec.cell}"
            export_bundle(spec, random_weights(spec, seed), out)
            cache[key] = out
        return cache[key]

    return make


@pytest.fixture
def copy_bundle(tmp_path) -> Callable[[Path], Path]:
    """A private copy of a bundle that a test may damage."""

    def copy(bundle: Path) -> Path:
        target = tmp_path / f"copy-{bundle.name}"
        shutil.copytree(bundle, target)
        return target

    return copy
