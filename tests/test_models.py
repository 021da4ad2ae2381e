"""The example bundles in models/ (made by their recipe.sh): they verify, run and stream without torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgernn.cli import cli

MODELS = Path(__file__).resolve().parents[1] / "models"
BUNDLES = sorted(p.parent for p in MODELS.glob("*/bundle/manifest.json"))


def test_there_are_example_bundles_each_with_its_recipe():
    assert {b.parent.name for b in BUNDLES} == {"sum-lstm", "bands-gru"}
    for b in BUNDLES:
        assert (b.parent / "recipe.sh").is_file()
        assert all(f.stat().st_size < 1 << 20 for f in b.iterdir())


@pytest.mark.parametrize("bundle", BUNDLES, ids=lambda b: b.parent.name)
def test_example_bundle_verifies(bundle):
    result = CliRunner().invoke(cli, ["verify", str(bundle), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    ran = [v for v in report["variants"] if v["status"] == "passed"]
    assert len(ran) >= 8  # every ONNX variant at least (TFLite ones where a TFLite runtime is installed)


def test_example_stream_without_torch():
    code = (
        "import sys, builtins\n"
        "real = builtins.__import__\n"
        "def guard(name, *a, **k):\n"
        "    if name.split('.')[0] in ('torch', 'tensorflow'): raise ImportError('blocked ' + name)\n"
        "    return real(name, *a, **k)\n"
        "builtins.__import__ = guard\n"
        "from edgernn.cli import cli\n"
        f"sys.argv = ['edgernn', 'run', {str(MODELS / 'sum-lstm' / 'bundle')!r}, '--stream']\n"
        "cli(prog_name='edgernn')\n"
    )
    frames = "\n".join(["0.5"] * 20) + "\n"
    done = subprocess.run([sys.executable, "-c", code], input=frames, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    last = json.loads(done.stdout.splitlines()[-1])
    assert last["frame"] == 20
    assert abs(last["prediction"][0] - 10.0) < 0.5  # the sum of 20 values of 0.5
