"""Bring your own PyTorch model: every kind of module users write exports, validates against the
module itself, and runs (windows; streams where it can), and the lint says what edgernn did.

The modules are in tests/byom_modules.py, written as users write them. Each is exported once per
session (``exported``); the tests then check the bundle from the outside: the manifest, the
runtime's predictions against the module, streaming, padding, the lint, and the CLI.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import byom_modules as bm  # noqa: E402

import edgernn  # noqa: E402
from edgernn.parity import TOLERANCES  # noqa: E402
from edgernn.runtime import load  # noqa: E402
from helpers import invoke

FP32 = TOLERANCES["fp32"]
F = bm.FEATURES
MODULES_FILE = Path(bm.__file__)

# name: (module class, example input, export options, expected path, streams)
CASES = {
    "lstm_regressor": (bm.LSTMRegressor, lambda: torch.randn(2, 12, F), {}, "recognised", True),
    "time_major_gru": (bm.TimeMajorGRU, lambda: torch.randn(12, 2, F), {}, "recognised", True),
    "zero_state_lstm": (bm.ZeroStateLSTM, lambda: torch.randn(2, 12, F), {}, "recognised", True),
    "baked_batch_gru": (bm.BakedBatchGRU, lambda: torch.randn(4, 12, F), {}, "recognised", True),
    "seq2seq_gru": (bm.Seq2SeqGRU, lambda: torch.randn(2, 12, F), {}, "recognised", True),
    "stacked_with_norm": (bm.StackedWithNorm, lambda: torch.randn(2, 12, F), {"head": "classification"},
                          "torch.onnx.export", False),
    "sentiment": (bm.SentimentClassifier, lambda: (torch.randint(0, 120, (3, 15)), torch.tensor([15, 9, 4])),
                  {"head": "classification", "labels": ("neg", "pos")}, "recognised", True),
    "token_gru": (bm.TokenGRU, lambda: torch.randint(0, 50, (2, 10)), {}, "recognised", True),
    "bilstm": (bm.BiLSTMClassifier, lambda: torch.randn(2, 12, F), {}, "recognised", False),
    "packed_bigru": (bm.PackedBiGRU, lambda: (torch.randn(3, 12, F), torch.tensor([12, 5, 8])), {}, "recognised", False),
    "proj_lstm": (bm.ProjectedLSTM, lambda: torch.randn(2, 12, F), {}, "recognised", True),
    "packed_proj_lstm": (bm.PackedProjectedLSTM, lambda: (torch.randn(3, 12, F), torch.tensor([12, 5, 8])), {},
                         "recognised", True),
    "mlp_head_split": (bm.MLPHeadGRU, lambda: torch.randn(2, 12, F), {"split": ("gru", "head")},
                       "torch.onnx.export", True),
    "fft_dynamo": (bm.FFTFeatures, lambda: torch.randn(2, 12, F), {}, "torch.onnx.export", False),
}


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """``exported(name)`` → (module, result), exported once per session."""
    root = tmp_path_factory.mktemp("byom")
    cache = {}

    def get(name):
        if name not in cache:
            cls, example, options, _, _ = CASES[name]
            torch.manual_seed(0)
            module = cls()
            result = edgernn.export(module, example(), out=root / name, **options)
            cache[name] = (module.eval(), result)
        return cache[name]

    return get


def module_y(module, x, lengths=None, time_major=False) -> np.ndarray:
    """The module's output for batch-first numpy inputs."""
    xt = torch.from_numpy(x)
    args = (xt.transpose(0, 1) if time_major else xt,) + (() if lengths is None else (torch.from_numpy(lengths),))
    with torch.no_grad():
        return module(*args).numpy()


def close(got, want, what="") -> None:
    np.testing.assert_allclose(np.asarray(got, np.float64), np.asarray(want, np.float64),
                               atol=FP32.atol, rtol=FP32.rtol, err_msg=what)


def inputs_for(name, batch, length, seed=0):
    rng = np.random.default_rng(seed)
    if name == "sentiment":
        return rng.integers(1, 120, (batch, length)), np.sort(rng.integers(1, length + 1, batch))[::-1].copy()
    if name == "token_gru":
        return rng.integers(0, 50, (batch, length)), None
    x = rng.standard_normal((batch, length, F)).astype(np.float32)
    lengths = np.sort(rng.integers(1, length + 1, batch))[::-1].copy() if name.startswith("packed") else None
    return x, lengths


# --------------------------------------------------------------------------------------------
# Every module kind: exported, validated against the module, and run by the runtime
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(CASES))
def test_module_exports_validates_and_runs(exported, name):
    module, result = exported(name)
    _, _, _, path, streams = CASES[name]
    m = result.manifest
    assert result.path == path
    assert all(r.passed for r in result.reports), [r.worst() for r in result.reports]
    assert {v.name for v in m.variants} == {"onnx-window-fp32"} | ({"onnx-step-fp32"} if streams else set())
    for v in m.variants:
        assert v.parity["against"] == "module" and v.parity["max_abs"] < 1e-5, (v.name, v.parity)
        assert (v.ir_version, v.opset) == ((8, 18) if name == "fft_dynamo" else (8, 17))
    assert m.streaming["supported"] is streams, m.streaming
    if not streams:
        assert m.streaming["reason"]
    assert m.module["class"].endswith(module.__class__.__name__) and m.module["lint"]

    # the runtime, without torch's help: a fresh batch size and length, against the module
    batch = 4 if name == "baked_batch_gru" else 3
    x, lengths = inputs_for(name, batch, 17 if name != "baked_batch_gru" else 12, seed=1)
    model = load(result.bundle_dir)
    got = model.window(np.asarray(x), lengths)["y"]
    close(got, module_y(module, x, lengths, time_major=name == "time_major_gru"), name)


@pytest.mark.parametrize("name", [n for n, c in CASES.items() if c[4]])
def test_streaming_own_model_matches_the_module(exported, name):
    module, result = exported(name)
    batch = 4 if name == "baked_batch_gru" else 2
    x, _ = inputs_for(name, batch, 9, seed=2)
    session = load(result.bundle_dir).stream(batch=batch)
    ys = np.stack([session.step_raw(np.ascontiguousarray(x[:, t])) for t in range(x.shape[1])], axis=1)
    lengths = np.full(batch, 9) if name.startswith("packed") or name == "sentiment" else None
    want = module_y(module, x, lengths, time_major=name == "time_major_gru")
    close(ys if want.ndim == 3 else ys[:, -1], want, name)


def test_recognised_parity_also_against_the_numpy_reference(exported):
    for name in ("lstm_regressor", "sentiment", "packed_bigru", "bilstm", "seq2seq_gru"):
        _, result = exported(name)
        against = {c.against for r in result.reports for c in r.comparisons}
        assert against == {"module", "numpy"}, name
        assert result.manifest.variant("onnx-window-fp32").parity["numpy"]["max_abs"] < 1e-5


# --------------------------------------------------------------------------------------------
# Padding, token ids, unknown fields
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["sentiment", "packed_bigru", "packed_proj_lstm"])
def test_padding_does_not_change_any_result(exported, name):
    _, result = exported(name)
    model = load(result.bundle_dir)
    x, lengths = inputs_for(name, 4, 14, seed=3)
    batch = model.predict(x, lengths=lengths).values
    for i in range(4):
        alone = model.predict(x[i : i + 1, : lengths[i]]).values[0]  # the same sequence, unpadded, by itself
        padded = batch[i, : lengths[i]] if batch.ndim == 3 else batch[i]
        close(padded, alone, f"{name} sequence {i}")
    garbage = x.copy()
    for i, n in enumerate(lengths):
        garbage[i, n:] = 7 if garbage.dtype.kind in "iu" else 1e3  # other padding values, same result
    close(model.predict(garbage, lengths=lengths).values, batch)


def test_token_ids_are_not_normalised_and_are_checked(exported):
    _, result = exported("sentiment")
    model = load(result.bundle_dir)
    assert model.spec.vocab_size == 120 and model.variant.inputs[0].dtype == "int64"
    pred = model.predict(np.array([[5, 9, 33, 0]]), lengths=np.array([3]))
    assert pred.records()[0]["label"] in ("neg", "pos")
    with pytest.raises(edgernn.errors.BadInputError, match=r"token ids in 0\.\.119"):
        model.predict(np.array([[5, 120]]))
    session = model.stream()
    session.step(5)
    with pytest.raises(edgernn.errors.BadInputError, match="token id"):
        session.step(0.5)


def test_baked_batch_runs_on_any_batch(exported):
    module, result = exported("baked_batch_gru")
    x, _ = inputs_for("baked_batch_gru", 4, 12, seed=4)
    model = load(result.bundle_dir)
    want = module_y(module, x)
    close(model.predict(x[:1]).values, want[:1])
    close(model.predict(np.concatenate([x, x, x[:1]])).values[4:8], want)


def test_unknown_spec_fields_are_left_out(exported):
    _, result = exported("stacked_with_norm")
    spec = json.loads((result.bundle_dir / "manifest.json").read_text())["spec"]
    assert "cell" not in spec and "hidden_size" not in spec and "num_layers" not in spec
    assert spec["head"] == "classification" and spec["input_size"] == F and spec["output_size"] == 3
    assert result.manifest.module["unknown"] == ["cell", "hidden_size", "num_layers"]
    pred = load(result.bundle_dir).predict(np.zeros((2, 6, F)))
    assert pred.values.shape == (2, 3) and np.allclose(pred.values.sum(axis=1), 1)


# --------------------------------------------------------------------------------------------
# Lint
# --------------------------------------------------------------------------------------------


LINT = {
    "lstm_regressor": {"train_mode", "size"},
    "baked_batch_gru": {"baked_batch", "gru_gates"},
    "proj_lstm": {"proj_size"},
    "sentiment": {"packed_sequence", "token_ids"},
    "time_major_gru": {"time_major", "gru_gates"},
    "bilstm": {"bidirectional"},
    "stacked_with_norm": {"unsupported_layers", "gru_gates"},
    "fft_dynamo": {"unsupported_op"},
}


@pytest.mark.parametrize("name", list(LINT))
def test_lint_items_say_what_edgernn_did(exported, name):
    _, result = exported(name)
    codes = {i.code for i in result.lint}
    assert LINT[name] <= codes, codes
    assert all(i.found and i.action for i in result.lint)
    assert [i["code"] for i in result.manifest.module["lint"]] == [i.code for i in result.lint]


def test_lint_specifics(exported):
    lint = {i.code: i for i in exported("baked_batch_gru")[1].lint}
    assert "batch size 4" in lint["baked_batch"].found and "any batch size" in lint["baked_batch"].action
    lint = {i.code: i for i in exported("proj_lstm")[1].lint}
    assert "proj_size=4" in lint["proj_size"].found and "Scan" in lint["proj_size"].action
    lint = {i.code: i for i in exported("lstm_regressor")[1].lint}
    assert lint["train_mode"].level == "warning" and "eval mode" in lint["train_mode"].action
    lint = {i.code: i for i in exported("fft_dynamo")[1].lint}
    assert "aten::fft_rfft" in lint["unsupported_op"].found
    tried = exported("fft_dynamo")[1].manifest.module["tried"]
    assert [t["exporter"] for t in tried] == ["torchscript", "dynamo"] and "fft_rfft" in tried[0]["result"]


# --------------------------------------------------------------------------------------------
# The command line
# --------------------------------------------------------------------------------------------


def one_line_error(result, exit_code: int) -> str:
    """Exit code, no traceback, one line on stderr; stdout holds at most the lint, printed before conversion."""
    assert result.exit_code == exit_code, (result.stdout, result.stderr)
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stdout == "" or result.stdout.startswith("lint (before conversion):\n")
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_cli_exports_a_factory_with_torch_save_weights(tmp_path):
    trained = bm.build_model()
    torch.nn.init.normal_(trained.fc.weight)
    torch.save(trained.state_dict(), tmp_path / "weights.pt")
    out = tmp_path / "bundle"
    result = invoke("export", "--module", f"{MODULES_FILE}:build_model", "--weights", tmp_path / "weights.pt",
                    "--input-shape", "1,30,5", "--out", out, "--json")
    assert result.exit_code == 0, result.output
    d = json.loads(result.stdout)
    assert d["path"] == "recognised" and d["streaming"]["supported"]
    assert {i["code"] for i in d["lint"]} >= {"train_mode", "size"}
    assert all(v["parity"]["max_abs"] < 1e-5 for v in d["variants"])
    x = np.random.default_rng(0).standard_normal((3, 30, F)).astype(np.float32)
    close(load(out).predict(x).values, module_y(trained.eval(), x))  # the weights file's, not the factory's


def test_cli_exports_a_class_with_safetensors_weights_and_prints_the_lint(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(3)
    save_file(bm.SentimentClassifier().state_dict(), tmp_path / "w.safetensors")
    result = invoke("export", "--module", f"{MODULES_FILE}:SentimentClassifier", "--weights", tmp_path / "w.safetensors",
                    "--input-shape", "2,15", "--head", "classification", "--labels", "neg,pos", "--out", tmp_path / "b")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "lint (before conversion):"
    assert any("pack_padded_sequence" in line and "lengths" in line for line in lines)
    assert any(line.startswith("exported ") and "edgernn's own writers" in line for line in lines)
    assert "streaming: yes (step graph)" in lines


@pytest.mark.slow
def test_cli_unexportable_module_is_one_line_naming_the_operation(tmp_path):
    result = invoke("export", "--module", f"{MODULES_FILE}:build_bessel", "--input-shape", "2,12,5",
                    "--out", tmp_path / "b")
    line = one_line_error(result, 2)
    assert "cannot export BesselFeatures: aten::special_bessel_j0 at byom_modules.py:" in line
    assert not (tmp_path / "b").exists()


def test_cli_module_errors_are_one_line(tmp_path):
    torch.save({"lstm.weight": torch.zeros(1)}, tmp_path / "bad.pt")
    cases = [
        (("--module", f"{MODULES_FILE}:build_modle", "--input-shape", "1,5,5"), "has no 'build_modle'"),
        (("--module", f"{MODULES_FILE}:build_model", "--input-shape", "1,5"), "has no feature axis"),
        (("--module", f"{MODULES_FILE}:build_model", "--input-shape", "1,5,3"), "does not run on an example input"),
        (("--module", f"{MODULES_FILE}:build_model", "--weights", tmp_path / "bad.pt", "--input-shape", "1,5,5"),
         "does not fit LSTMRegressor (missing fc.bias"),
        (("--module", f"{MODULES_FILE}:build_model",), "needs --input-shape"),
        ((), "give a CHECKPOINT folder, or your own model with --module"),
    ]
    for args, message in cases:
        line = one_line_error(invoke("export", *args, "--out", tmp_path / "b"), 2)
        assert message in line, line


def test_projected_lstm_in_an_unrecognised_module_is_refused_in_one_line(tmp_path):
    class ProjThenNorm(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = torch.nn.LSTM(F, 8, batch_first=True, proj_size=3)
            self.norm = torch.nn.LayerNorm(3)
            self.fc = torch.nn.Linear(3, 1)

        def forward(self, x):
            return self.fc(self.norm(self.lstm(x)[0][:, -1]))

    with pytest.raises(edgernn.errors.ExportError, match=r"LSTM 'lstm' has proj_size=3, which torch.onnx.export rejects"):
        edgernn.export(ProjThenNorm(), torch.randn(2, 6, F), out=tmp_path / "b")


def test_packed_sequences_outside_the_recognised_structure_are_refused_in_one_line(tmp_path):
    class PackedThenNorm(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.gru = torch.nn.GRU(F, 6, batch_first=True)
            self.norm = torch.nn.LayerNorm(6)
            self.fc = torch.nn.Linear(6, 2)

        def forward(self, x, lengths):
            _, h = self.gru(torch.nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
            return self.fc(self.norm(h[-1]))

    example = (torch.randn(3, 8, F), torch.tensor([8, 3, 5]))
    with pytest.raises(edgernn.errors.ExportError, match=r"forward packs sequences \(pack_padded_sequence\), which "
                                                         r"torch.onnx.export cannot convert.*LayerNorm 'norm'"):
        edgernn.export(PackedThenNorm(), example, out=tmp_path / "b")
    with pytest.raises(edgernn.errors.ExportError, match="cannot write StackedWithNorm with edgernn's own writers"):
        edgernn.export(bm.StackedWithNorm(), torch.randn(2, 6, F), out=tmp_path / "c", exporter="edgernn")
    assert not (tmp_path / "b").exists() and not (tmp_path / "c").exists()


def test_info_describes_a_module_bundle(exported):
    _, result = exported("stacked_with_norm")
    out = invoke("info", result.bundle_dir)
    assert out.exit_code == 0, out.output
    assert "streaming: no" in out.stdout
