"""What a module's forward is, read truthfully: scripted modules, ``forward(x, hidden)``, cell loops
counted (a fixed-horizon decoder does not fix the window), the construct that stops recognition named,
and ``run`` writing every-step outputs in full precision."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
import byom_modules as bm  # noqa: E402

import edgernn  # noqa: E402
from edgernn.cli import cli  # noqa: E402
from edgernn.errors import BadInputError, ExportError  # noqa: E402
from edgernn.runtime import load  # noqa: E402

F = bm.FEATURES


def test_scripted_module_is_refused_with_the_true_reason(tmp_path):
    with pytest.raises(ExportError) as e:
        edgernn.export(torch.jit.script(bm.LSTMRegressor()), torch.randn(2, 6, F), out=tmp_path / "b")
    message = str(e.value)
    assert "LSTMRegressor is a TorchScript module (torch.jit.script)" in message
    assert "'lstm' (LSTM)" in message and "no nn.LSTM" not in message
    assert not (tmp_path / "b").exists()


def test_forward_x_hidden_is_not_read_as_lengths(tmp_path):
    with pytest.raises(BadInputError, match=r"StatefulLSTM.forward\(x, hidden\) needs 'hidden', which looks like an "
                                            r"initial state.*hidden=None"):
        edgernn.export(bm.StatefulLSTM(), torch.randn(2, 6, F), out=tmp_path / "a")
    with pytest.raises(BadInputError, match=r"second example input of StatefulLSTM is a float tensor of shape \(1, 2, 8\)"):
        edgernn.export(bm.StatefulLSTM(), (torch.randn(2, 6, F), torch.zeros(1, 2, 8)), out=tmp_path / "b")
    torch.manual_seed(0)
    module = bm.OptionalStateGRU().eval()
    result = edgernn.export(module, torch.randn(2, 6, F), out=tmp_path / "c")
    assert result.manifest.module["input"]["lengths"] is False
    assert [t.name for t in result.manifest.variant("onnx-window-fp32").inputs] == ["x"]


def test_fixed_horizon_decoder_loop_keeps_the_window_free(tmp_path):
    torch.manual_seed(0)
    module = bm.EncoderDecoderGRU().eval()
    result = edgernn.export(module, torch.randn(2, 30, F), out=tmp_path / "b")
    loop = next(i for i in result.lint if i.code == "cell_loop")
    assert "called 5 times per forward, whatever the input's length" in loop.found
    assert "30" not in loop.line() and not any(i.code == "fixed_time" for i in result.lint)
    x = np.random.default_rng(0).standard_normal((3, 11, F)).astype(np.float32)  # not 30 steps
    with torch.no_grad():
        want = module(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(load(tmp_path / "b").predict(x).values, want, atol=1e-5, rtol=1e-4)


def test_cell_loop_over_the_input_still_says_it_fixes_the_window(tmp_path):
    result = edgernn.export(bm.CellLoopLSTM(), torch.randn(2, 12, F), out=tmp_path / "b")
    loop = next(i for i in result.lint if i.code == "cell_loop")
    assert "once per input step (12 calls for 12 steps)" in loop.found and "exactly 12 steps" in loop.action


def test_softmax_in_forward_is_named_as_what_stops_recognition(tmp_path):
    result = edgernn.export(bm.SoftmaxClassifier(), torch.randn(2, 6, F), out=tmp_path / "b")
    assert result.path == "torch.onnx.export"
    item = next(i for i in result.lint if i.code == "unsupported_layers")
    assert "forward applies aten::softmax at byom_modules.py:" in item.found


def test_run_writes_every_step_outputs_in_full_precision(tmp_path):
    torch.manual_seed(0)
    module = bm.Seq2SeqGRU().eval()
    edgernn.export(module, torch.randn(2, 6, F), out=tmp_path / "b")
    x = np.random.default_rng(0).standard_normal((2, 7, F)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    want = load(tmp_path / "b").predict(x).values  # (2, 7, 4)
    out = CliRunner().invoke(cli, ["run", str(tmp_path / "b"), "--input", str(tmp_path / "x.npy")])
    assert out.exit_code == 0, out.output
    got = np.array([json.loads(line)["prediction"] for line in out.stdout.splitlines()])
    np.testing.assert_array_equal(got, want)  # every digit, not rounded
    assert not np.array_equal(np.round(want, 6), want)
    out = CliRunner().invoke(cli, ["run", str(tmp_path / "b"), "--input", str(tmp_path / "x.npy"), "--precision", "3"])
    got = np.array([json.loads(line)["prediction"] for line in out.stdout.splitlines()])
    np.testing.assert_array_equal(got, np.round(want, 3))
