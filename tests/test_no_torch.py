"""The device path never imports torch or tensorflow: `import edgernn`, `edgernn --help`,
`edgernn run` (windows and --stream) and `edgernn info`, each checked in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from helpers import HEAVY, REGRESSION_SPEC, SCRIPT, result_of, run_python

def test_import_help_run_info_and_stream_do_not_import_torch(make_bundle, tmp_path):
    bundle = make_bundle(REGRESSION_SPEC)
    np.save(tmp_path / "x.npy", np.ones((2, 6, 3), np.float32))
    commands = [
        ("help", ["--help"], None),
        ("run", ["run", str(bundle), "--input", str(tmp_path / "x.npy"), "--output", str(tmp_path / "p.jsonl")], None),
        ("run --stream", ["run", str(bundle), "--stream"], "1,2,3\n[1, 2, 3]\n"),
        ("info", ["info", str(bundle)], None),
        ("info file", ["info", str(bundle / "model.onnx")], None),
    ]
    proc = run_python(SCRIPT.format(heavy=HEAVY, commands=commands))
    assert proc.returncode == 0, proc.stderr
    result = result_of(proc)
    assert result == {"exits": {name: 0 for name, _, _ in commands}, "heavy": []}
    assert "Usage: edgernn [OPTIONS] COMMAND [ARGS]..." in proc.stdout
    assert len((tmp_path / "p.jsonl").read_text().splitlines()) == 2
    assert '"frame": 2' in proc.stdout


def test_the_check_can_fail(tmp_path):
    """The same script sees torch when something imports it, and the finder refuses the import."""
    script = SCRIPT.format(heavy=HEAVY, commands=[]).replace(
        "from edgernn.cli import cli", "from edgernn.cli import cli\nimport edgernn.nn")
    unguarded = run_python(script.replace("sys.meta_path.insert(0, Refuse())", ""))
    assert unguarded.returncode == 0, unguarded.stderr
    assert "torch" in result_of(unguarded)["heavy"]
    guarded = run_python(script)
    assert guarded.returncode == 1
    assert "ImportError: torch must not be imported on the device path" in guarded.stderr


def test_python_dash_m_edgernn_run_matches_the_library(make_bundle, tmp_path):
    """`python -m edgernn run` in a fresh process: exit 0, the library's predictions, no torch loaded."""
    from edgernn.runtime import load

    bundle = make_bundle(REGRESSION_SPEC)
    x = np.random.default_rng(3).standard_normal((3, 6, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    code = textwrap.dedent("""
        import runpy, sys
        sys.argv = ["edgernn", *sys.argv[1:]]
        try:
            runpy.run_module("edgernn", run_name="__main__")
        except SystemExit as e:
            code = e.code or 0
        else:
            code = 0
        heavy = sorted({m.split(".")[0] for m in sys.modules} & {"torch", "tensorflow"})
        print("HEAVY", heavy, "EXIT", code, file=sys.stderr)
    """)
    proc = run_python(code, "run", str(bundle), "--input", str(tmp_path / "x.npy"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines()[-1] == "HEAVY [] EXIT 0"
    got = np.array([json.loads(line)["prediction"] for line in proc.stdout.splitlines()])
    np.testing.assert_array_equal(got, load(bundle).predict(x).values)

    plain = subprocess.run([sys.executable, "-m", "edgernn", "run", str(bundle), "--input", str(tmp_path / "x.npy")],
                           capture_output=True, text=True, timeout=120)
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout == proc.stdout


@pytest.mark.parametrize("args,message", [
    (["run", "nope", "--input", "x.npy"], "error: nope: no such bundle directory or model file"),
])
def test_python_dash_m_edgernn_bad_input_is_one_line_exit_2(args, message, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "edgernn", *args], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr == message + "\n"
