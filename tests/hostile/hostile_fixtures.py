"""Fixtures of the hostile suite: a small bundle (two fp32 ONNX variants of the shipped sum-lstm model).

Imported by each test module (not a conftest.py: tests/conftest.py is imported by name elsewhere)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from hostile_helpers import make_small_bundle


@pytest.fixture(scope="session")
def small_bundle(tmp_path_factory) -> Path:
    """Do not modify: copy it with the ``bundle`` fixture."""
    return make_small_bundle(tmp_path_factory.mktemp("hostile") / "small")


@pytest.fixture
def bundle(small_bundle, tmp_path) -> Path:
    """A private copy of the small bundle that a test may damage."""
    target = tmp_path / "bundle"
    shutil.copytree(small_bundle, target)
    return target


@pytest.fixture
def windows(tmp_path) -> Path:
    """Two windows of 20 steps for the sum model, as .npy."""
    path = tmp_path / "x.npy"
    np.save(path, np.random.default_rng(0).random((2, 20, 1)))
    return path


@pytest.fixture
def not_root():
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        pytest.skip("permissions do not hold for root")
