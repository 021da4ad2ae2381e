"""Shared fixtures: small models and bundles, built once per test session.

- ``trained_run`` / ``trained_bundle``: an LSTM really trained (2 epochs) on the built-in ``sum``
  task and exported the way a user does it; the end-to-end path.
- ``make_bundle(spec, seed)``: a bundle exported from a torch model with random weights
  (``torch.manual_seed(seed)``), cached per (spec, seed). Specs below use odd sizes, several
  features and a non-trivial normalisation so that a transposed matrix or a skipped
  normalisation cannot hide.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from edgernn.spec import ModelSpec, Normalization

# Three features, two regression outputs, with normalisation far from identity.
REGRESSION_SPEC = ModelSpec(
    cell="lstm", input_size=3, hidden_size=6, num_layers=2, head="regression", output_size=2, window=6,
    task="test-regression",
    normalization=Normalization(x_mean=(1.0, -2.0, 0.5), x_std=(2.0, 0.5, 3.0), y_mean=(10.0, -1.0), y_std=(3.0, 0.2)),
)
# A GRU classifier with labels; inputs normalised, logits not.
CLASSIFIER_SPEC = ModelSpec(
    cell="gru", input_size=2, hidden_size=5, num_layers=1, head="classification", output_size=3,
    labels=("low", "mid", "high"), window=8, task="test-classes",
    normalization=Normalization(x_mean=(0.3, -0.7), x_std=(1.5, 0.4)),
)
BIDIRECTIONAL_SPEC = ModelSpec(
    cell="lstm", input_size=3, hidden_size=4, num_layers=1, bidirectional=True, output_size=2, window=6,
)


def random_weights(spec: ModelSpec, seed: int) -> dict[str, np.ndarray]:
    """A torch model's freshly initialised weights (biases included), as numpy arrays."""
    from edgernn.nn import build_model

    model = build_model(spec, seed=seed)
    return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}


def write_manifest_json(bundle: Path, manifest: dict) -> None:
    (bundle / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def read_manifest_json(bundle: Path) -> dict:
    return json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))


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
