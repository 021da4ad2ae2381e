"""`edgernn run` on a text classifier exported from the user's module: token ids and lengths from files."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from edgernn.cli import cli

sys.path.insert(0, str(Path(__file__).parent))
import byom_modules as bm  # noqa: E402


@pytest.fixture(scope="module")
def sentiment(tmp_path_factory):
    import edgernn

    torch.manual_seed(0)
    module = bm.SentimentClassifier().eval()
    out = tmp_path_factory.mktemp("tokens") / "bundle"
    edgernn.export(module, (torch.randint(1, 120, (3, 15)), torch.tensor([15, 9, 4])), out=out)
    return module, out


def test_run_reads_token_ids_and_lengths_and_matches_the_module(sentiment, tmp_path):
    module, bundle = sentiment
    ids = np.random.default_rng(1).integers(1, 120, (4, 12))
    lengths = np.array([12, 5, 1, 8])
    ids[np.arange(12)[None, :] >= lengths[:, None]] = 0  # padding after each sequence's end
    np.save(tmp_path / "ids.npy", ids)
    np.savetxt(tmp_path / "lengths.csv", lengths, fmt="%d")
    result = CliRunner().invoke(cli, ["run", str(bundle), "--input", str(tmp_path / "ids.npy"),
                                      "--lengths", str(tmp_path / "lengths.csv")])
    assert result.exit_code == 0, result.output
    got = np.array([json.loads(line)["prediction"] for line in result.stdout.splitlines()])
    with torch.no_grad():
        want = module(torch.from_numpy(ids), torch.from_numpy(lengths)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_run_refuses_token_ids_that_are_not_integers(sentiment, tmp_path):
    _, bundle = sentiment
    np.save(tmp_path / "ids.npy", np.full((2, 5), 1.5))
    result = CliRunner().invoke(cli, ["run", str(bundle), "--input", str(tmp_path / "ids.npy")])
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: {tmp_path / 'ids.npy'}: expected token ids as integers, got other numbers"
