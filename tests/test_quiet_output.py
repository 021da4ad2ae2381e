"""Quiet by default: no LiteRT notice on stderr, one line per variant from `info`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edgernn.cli import cli

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "models" / "sum-lstm" / "bundle"
NOTICE = "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."


def _edgernn(*args, stdin: str | None = None):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # it does not stop the notice anyway
    return subprocess.run([sys.executable, "-m", "edgernn", *map(str, args)], env=env, input=stdin,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args", [
    ["run", BUNDLE, "--variant", "tflite-window-fp32", "--input", "WINDOW"],
    ["run", BUNDLE, "--variant", "tflite-window-int8-static", "--stream"],
    ["verify", BUNDLE, "--variant", "tflite-window-fp32", "--variant", "tflite-step-fp16"],
])
def test_no_xnnpack_notice_on_stderr(args, tmp_path):
    pytest.importorskip("ai_edge_litert")
    window = tmp_path / "w.npy"
    np.save(window, np.full((1, 20, 1), 0.5, np.float32))
    r = _edgernn(*[window if a == "WINDOW" else a for a in args], stdin="0.5\n0.25\n")
    assert r.returncode == 0, r.stderr
    assert "XNNPACK" not in r.stderr, r.stderr
    assert r.stdout.strip()


def test_native_stderr_filter_keeps_everything_but_the_notice(capfd):
    from edgernn.runtime.tflite_backend import native_stderr_without_notices

    with native_stderr_without_notices():
        os.write(2, f"{NOTICE}\nERROR: a real problem\n".encode())
    captured = capfd.readouterr()
    assert captured.err == "ERROR: a real problem\n"


def test_info_prints_one_line_per_variant_and_verbose_the_rest():
    manifest = json.loads((BUNDLE / "manifest.json").read_text())
    names = [v["name"] for v in manifest["variants"]]
    short = CliRunner().invoke(cli, ["info", str(BUNDLE)])
    assert short.exit_code == 0, short.output
    lines = short.stdout.splitlines()
    assert [line.split()[0] for line in lines if line.startswith("  ")] == names
    assert len(lines) <= len(names) + 6
    assert "precision report:" not in short.stdout
    verbose = CliRunner().invoke(cli, ["info", str(BUNDLE), "--verbose"])
    assert verbose.exit_code == 0
    assert verbose.stdout.count("precision report:") == len(names)
