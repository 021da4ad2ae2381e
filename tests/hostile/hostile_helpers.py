"""Shared by the hostile suite and its fuzz worker: a small bundle, the CLI in-process, and the checks
every case makes (exit code, one line on stderr, no traceback, nothing left half-written)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np

from edgernn.spec import ModelSpec

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "models" / "sum-lstm" / "bundle"
KEEP = ("onnx-window-fp32", "onnx-step-fp32")
LEFTOVER_MARKS = (".partial", ".tmp", ".old", ".lock")


def make_small_bundle(dest: Path) -> Path:
    """The shipped sum-lstm bundle cut to its two fp32 ONNX variants (no torch needed, loads fast)."""
    manifest = json.loads((SHIPPED / "manifest.json").read_text(encoding="utf-8"))
    manifest["variants"] = [v for v in manifest["variants"] if v["name"] in KEEP]
    dest.mkdir(parents=True)
    for v in manifest["variants"]:
        shutil.copyfile(SHIPPED / v["file"], dest / v["file"])
    write_manifest(dest, manifest)
    return dest


def read_manifest(bundle: Path) -> dict:
    return json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))


def write_manifest(bundle: Path, manifest) -> None:
    (bundle / "manifest.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")


def fix_checksum(bundle: Path, file: str) -> None:
    """After damaging ``file`` on purpose: record its new sha256 and size, so loading reaches the model."""
    manifest = read_manifest(bundle)
    data = (bundle / file).read_bytes()
    for v in manifest["variants"]:
        if v["file"] == file:
            v["sha256"], v["size"] = hashlib.sha256(data).hexdigest(), len(data)
    write_manifest(bundle, manifest)


def invoke(args, input=None, env=None):
    from click.testing import CliRunner

    from edgernn.cli import cli

    return CliRunner().invoke(cli, [str(a) for a in args], input=input, env=env)


def problems(result, allowed=(0, 1, 2)) -> list[str]:
    """What is wrong with a CLI result for hostile input: [] when it failed (or passed) cleanly."""
    out = []
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        out.append(f"raised {type(result.exception).__name__}: {result.exception}")
    if result.exit_code not in allowed:
        out.append(f"exit {result.exit_code}")
    err = result.stderr
    if "Traceback" in err:
        out.append("traceback on stderr")
    if "internal error" in err:
        out.append(f"reached the last-resort guard: {err.strip()}")
    if result.exit_code != 0 and len(err.strip().splitlines()) != 1:
        out.append(f"stderr is {len(err.strip().splitlines())} lines: {err.strip()[:300]!r}")
    return out


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (symlinks not followed) → its sha256, to prove nothing changed."""
    state = {}
    for p in sorted(Path(folder).rglob("*")):
        if p.is_symlink():
            state[str(p.relative_to(folder))] = "-> " + str(p.readlink())
        elif p.is_file():
            state[str(p.relative_to(folder))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return state


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in Path(folder).iterdir() if any(m in p.name for m in LEFTOVER_MARKS))


# A small LSTM checkpoint spec, and a run folder written from it (weights may disagree with the spec).
SPEC = ModelSpec(cell="lstm", input_size=2, hidden_size=6, num_layers=1, output_size=1, window=8)


def write_run(folder, spec: ModelSpec, weights_spec: ModelSpec, drop=(), extra=()):
    from edgernn.checkpoint import expected_shapes, save_checkpoint

    rng = np.random.default_rng(0)
    weights = {name: rng.standard_normal(shape).astype(np.float32)
               for name, shape in expected_shapes(weights_spec).items() if name not in drop}
    weights.update({name: np.zeros(3, np.float32) for name in extra})
    save_checkpoint(folder, {"spec": spec.to_dict()}, weights)
    return folder
