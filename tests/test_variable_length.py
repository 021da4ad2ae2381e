"""Variable-length data for real (issue 11, point 6): right-padded batches with true lengths give,
for each sequence, the answer that sequence gets alone and unpadded — in PyTorch, in every runtime
entry point (``Model.predict`` with lengths or a list, ``run --input`` .ts/.npz, ``run --stream``),
and in ``evaluate``; normalisation sees real steps only; the spec says the inputs vary in length."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgernn.data import Dataset, fit_normalization, load_data
from helpers import invoke

ATOL = 1e-5  # fp32, the bar


def ok(result):
    assert result.exit_code == 0, f"exit {result.exit_code}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    return result


def make_cases(n: int, seed: int, lo: int = 4, hi: int = 14):
    """Two-feature sequences of random lengths; class "up" rises, "down" falls; values far from zero so that
    a model fed the padding would notice."""
    rng = np.random.default_rng(seed)
    cases = []
    for i in range(n):
        label = ("up", "down")[i % 2]
        length = int(rng.integers(lo, hi + 1))
        t = np.linspace(0, 1, length)
        trend = t if label == "up" else 1 - t
        x = np.stack([5 + 2 * trend, -3 + trend], axis=1) + 0.1 * rng.standard_normal((length, 2))
        cases.append((label, x))
    return cases


def write_ts(path, cases):
    header = "@problemName vl\n@univariate false\n@dimensions 2\n@equalLength false\n@classLabel true up down\n@data\n"
    lines = [":".join(",".join(f"{v:.5f}" for v in x[:, d]) for d in range(2)) + f":{label}" for label, x in cases]
    path.write_text(header + "\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module", params=["lstm", "gru"])
def vl_model(request, tmp_path_factory):
    from edgernn.datasource import DataSource
    from edgernn.export import export_checkpoint
    from edgernn.nn.train import TrainConfig, train

    root = tmp_path_factory.mktemp(f"vl-{request.param}")
    train_file = write_ts(root / "vl_TRAIN.ts", make_cases(40, seed=0))
    test_file = write_ts(root / "vl_TEST.ts", make_cases(16, seed=1, lo=3, hi=17))  # other lengths than training
    result = train(DataSource(path=str(train_file), test_path=str(test_file)),
                   TrainConfig(cell=request.param, hidden_size=8, epochs=15), root / "run", progress=False)
    export_checkpoint(root / "run", root / "bundle")
    return root, result, test_file


def padded(cases):
    lengths = np.array([len(x) for _, x in cases])
    x = np.zeros((len(cases), lengths.max(), 2), np.float32)
    for i, (_, seq) in enumerate(cases):
        x[i, : len(seq)] = seq
    return x, lengths


def test_spec_records_variable_length_and_reader(vl_model):
    _, result, _ = vl_model
    assert result.spec.variable_length and result.spec.data_layout == "ts"


def test_normalisation_uses_real_steps_only():
    cases = make_cases(6, seed=3)
    x, lengths = padded(cases)
    ds = Dataset(x, np.arange(6) % 2, "classification", labels=("up", "down"), lengths=lengths)
    real = np.concatenate([seq for _, seq in cases])
    norm = fit_normalization(ds)
    np.testing.assert_allclose(norm.x_mean, real.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(norm.x_std, real.std(axis=0), rtol=1e-6)


def test_ts_reader_pads_at_the_end_with_lengths(tmp_path):
    cases = make_cases(5, seed=2)
    ds = load_data(write_ts(tmp_path / "a.ts", cases))
    np.testing.assert_array_equal(ds.lengths, [len(x) for _, x in cases])
    for i, (_, seq) in enumerate(cases):
        np.testing.assert_allclose(ds.x[i, : len(seq)], seq, atol=1e-5)
        assert not ds.x[i, len(seq):].any()


def test_torch_padded_batch_equals_each_sequence_alone(vl_model):
    import torch

    from edgernn.nn import load_torch_model

    _, result, _ = vl_model
    model = load_torch_model(result.spec, result.weights)
    cases = make_cases(9, seed=4, lo=2, hi=16)
    x, lengths = padded(cases)
    with torch.no_grad():
        batch = model(torch.from_numpy(x), torch.from_numpy(lengths)).numpy()
        alone = np.concatenate([model(torch.from_numpy(seq[None].astype(np.float32))).numpy() for _, seq in cases])
    assert np.abs(batch - alone).max() <= ATOL


def test_runtime_padded_batch_equals_each_sequence_alone(vl_model):
    from edgernn.runtime import load

    root, _, _ = vl_model
    model = load(root / "bundle")
    cases = make_cases(9, seed=5, lo=2, hi=16)
    x, lengths = padded(cases)
    batch = model.predict(x, lengths=lengths)
    listed = model.predict([seq for _, seq in cases])
    alone = [model.predict(seq[None]) for _, seq in cases]
    alone_values = np.concatenate([a.values for a in alone])
    assert np.abs(batch.values - alone_values).max() <= ATOL
    assert np.abs(listed.values - alone_values).max() <= ATOL
    assert [r["label"] for r in batch.records()] == [a.records()[0]["label"] for a in alone]


def test_run_reads_ts_and_npz_with_lengths_and_streams_the_same(vl_model, tmp_path):
    from edgernn.runtime import load

    root, _, _ = vl_model
    cases = make_cases(5, seed=6)
    alone = np.concatenate([load(root / "bundle").predict(seq[None]).values for _, seq in cases])
    ts_out = [json.loads(line) for line in ok(invoke("run", root / "bundle", "--input",
                                                      write_ts(tmp_path / "in.ts", cases))).stdout.splitlines()]
    x, lengths = padded(cases)
    np.savez(tmp_path / "in.npz", x=x, lengths=lengths)
    npz_out = [json.loads(line) for line in ok(invoke("run", root / "bundle", "--input",
                                                       tmp_path / "in.npz")).stdout.splitlines()]
    frames = "\n\n".join("\n".join(",".join(f"{v:.5f}" for v in row) for row in seq) for _, seq in cases) + "\n"
    streamed = [json.loads(line) for line in ok(invoke("run", root / "bundle", "--stream", input=frames)).stdout.splitlines()]
    ends = np.cumsum([len(seq) for _, seq in cases]) - 1
    for outputs in (ts_out, npz_out, [streamed[e] for e in ends]):
        probs = np.array([[r["probabilities"][k] for k in ("up", "down")] for r in outputs])
        assert np.abs(probs - alone).max() <= ATOL
        assert [r["label"] for r in outputs] == [("up", "down")[k] for k in alone.argmax(axis=1)]


def test_evaluate_scores_each_test_sequence_at_its_true_length(vl_model):
    from edgernn.runtime import load

    root, result, test_file = vl_model
    report = json.loads(ok(invoke("evaluate", root / "bundle", "--checkpoint", root / "run", "--json")).stdout)
    cases = make_cases(16, seed=1, lo=3, hi=17)
    model = load(root / "bundle")
    expected = np.mean([model.predict(seq[None]).records()[0]["label"] == label for label, seq in cases])
    scores = {s["variant"]: s["metrics"]["accuracy"] for s in report["scores"]}
    assert scores["onnx-window-fp32"] == pytest.approx(expected)
    assert scores["pytorch-fp32"] == pytest.approx(expected)
    assert result.metrics["test"]["accuracy"] == pytest.approx(expected)
