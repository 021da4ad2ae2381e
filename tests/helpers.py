"""Helpers shared by the test files (test files import from here, never from each other or from
conftest): the small specs used across the suite, weights for them, the CLI run in-process, and the
probe that runs CLI commands in a fresh interpreter and reports which heavy packages were loaded."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from edgernn.cli import cli
from edgernn.parity import TOLERANCES
from edgernn.reference import model_forward
from edgernn.spec import ModelSpec, Normalization

FP32 = TOLERANCES["fp32"]


def invoke(*args, input: str | None = None):
    """The CLI in-process, as a user types it (every argument turned into a string)."""
    return CliRunner().invoke(cli, [str(a) for a in args], input=input)


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


def random_weights(spec: ModelSpec, seed: int = 0, scale: float = 1.0) -> dict[str, np.ndarray]:
    """A torch model's freshly initialised weights (biases included), as numpy arrays; ``scale`` > 1
    multiplies the recurrent weights so that gates saturate and outputs are O(1), as trained weights do
    (at init, outputs are ~0.1 and a swapped gate pair changes them little)."""
    from edgernn.nn import build_model

    model = build_model(spec, seed=seed)
    return {k: v.detach().numpy().copy() * (scale if k.startswith("rnn.") else 1.0)
            for k, v in model.state_dict().items()}


def write_manifest_json(bundle: Path, manifest: dict) -> None:
    (bundle / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def read_manifest_json(bundle: Path) -> dict:
    return json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))


def numpy_random_weights(spec: ModelSpec, seed: int) -> dict[str, np.ndarray]:
    """PyTorch state_dict names and shapes, filled with small seeded values."""
    rng = np.random.default_rng(seed)
    G, H = spec.gates, spec.hidden_size
    weights = {}
    for layer in range(spec.num_layers):
        in_size = spec.input_size if layer == 0 else H * spec.num_directions
        for suffix in ("", "_reverse")[: spec.num_directions]:
            for kind, shape in (("weight_ih", (G * H, in_size)), ("weight_hh", (G * H, H)),
                                ("bias_ih", (G * H,)), ("bias_hh", (G * H,))):
                weights[f"rnn.{kind}_l{layer}{suffix}"] = rng.uniform(-0.5, 0.5, shape).astype(np.float32)
    weights["head.weight"] = rng.uniform(-0.5, 0.5, (spec.output_size, H * spec.num_directions)).astype(np.float32)
    weights["head.bias"] = rng.uniform(-0.5, 0.5, (spec.output_size,)).astype(np.float32)
    return weights


HEAVY = ("torch", "tensorflow", "tf_keras", "keras", "jax")

# Runs CLI commands in-process (standalone_mode=False), then prints the heavy top-level modules loaded.
# A finder that refuses the heavy packages makes any attempt to import them fail loudly as well.
SCRIPT = textwrap.dedent("""
    import importlib.abc, json, sys

    HEAVY = {heavy!r}

    class Refuse(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in HEAVY:
                raise ImportError(f"{{name}} must not be imported on the device path")
            return None

    sys.meta_path.insert(0, Refuse())
    import edgernn, edgernn.runtime, edgernn.cli
    from edgernn.cli import cli

    exits = {{}}
    for name, args, stdin in {commands!r}:
        if stdin is not None:
            import io
            sys.stdin = io.StringIO(stdin)
        try:
            cli.main(args, prog_name="edgernn", standalone_mode=False)
            exits[name] = 0
        except SystemExit as e:
            exits[name] = e.code or 0
    loaded = sorted({{m.split(".")[0] for m in sys.modules}} & set(HEAVY))
    print("RESULT " + json.dumps({{"exits": exits, "heavy": loaded}}), file=sys.stderr)
""")


def run_python(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)


def result_of(proc: subprocess.CompletedProcess) -> dict:
    line = next(line for line in proc.stderr.splitlines() if line.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


# --- data files and CLI assertions shared by several test files ---------------------------------------

def assert_ok(result) -> None:
    assert result.exit_code == 0, f"exit {result.exit_code}\nstdout: {result.stdout}\nstderr: {result.stderr}"


def assert_one_line_error(result, exit_code: int, message: str) -> None:
    """Exit code, no traceback, nothing on stdout, and exactly one line on stderr holding ``message``."""
    assert result.exit_code == exit_code, f"stdout: {result.stdout}\nstderr: {result.stderr}"
    assert isinstance(result.exception, SystemExit), repr(result.exception)  # not an uncaught exception
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert message in lines[0], lines[0]


def assert_close(got, want, what: str = "") -> None:
    np.testing.assert_allclose(np.asarray(got, np.float64), np.asarray(want, np.float64),
                               atol=FP32.atol, rtol=FP32.rtol, err_msg=what)


def model_units(spec, values) -> np.ndarray:
    """De-normalised predictions back to the head's units, where the fp32 tolerance applies."""
    norm = spec.normalization
    return (np.asarray(values, np.float64) - np.asarray(norm.y_mean)) / np.asarray(norm.y_std)


def reference_raw(spec, weights, x_data_units: np.ndarray) -> np.ndarray:
    """The head output the NumPy reference gives for windows in data units: (N, O)."""
    norm = spec.normalization
    z = (np.asarray(x_data_units, np.float64) - np.asarray(norm.x_mean)) / np.asarray(norm.x_std)
    y, _ = model_forward(spec, weights, z)
    return y


def reference_per_step(spec, weights, frames: np.ndarray) -> np.ndarray:
    """The head on every step's hidden state, one stream: (T, O)."""
    norm = spec.normalization
    z = (np.asarray(frames, np.float64)[None] - np.asarray(norm.x_mean)) / np.asarray(norm.x_std)
    _, rnn = model_forward(spec, weights, z)
    return (rnn.output @ weights["head.weight"].astype(np.float64).T + weights["head.bias"])[0]


def data_units(spec, shape, seed: int) -> np.ndarray:
    norm = spec.normalization
    z = np.random.default_rng(seed).standard_normal(shape)
    return (np.asarray(norm.x_mean) + np.asarray(norm.x_std) * z).astype(np.float32)


def write_csv_windows(path: Path, x: np.ndarray, header: bool = False) -> None:
    """One window per row, flattened time-major (t0f0, t0f1, …), as `run --input x.csv` reads it."""
    rows = x.reshape(len(x), -1)
    lines = [",".join(f"t{t}f{f}" for t in range(x.shape[1]) for f in range(x.shape[2]))] if header else []
    lines += [",".join(repr(float(v)) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")


def jsonl(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def no_leftovers(folder: Path) -> list[str]:
    """Names of staging or temporary files a command may have left behind."""
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


def write_csv_rows(path, rows, header=None):
    lines = ([",".join(header)] if header else []) + [",".join(str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path
