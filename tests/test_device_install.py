"""A device install (``pip install edgernn``: numpy, onnxruntime, click) running every command.

The subprocesses get a ``sitecustomize`` whose meta-path finder makes the workstation packages
(torch, onnx, matplotlib, LiteRT, …) fail to import, as on a device that never installed them.
Workstation commands must say what to install — one line per missing package, exit 2, before any
work — and the device commands must skip .tflite variants the same way (the hint printed once).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "models" / "bands-gru" / "bundle"  # every variant within budget (sum-lstm: int8-dynamic is not)
WORKSTATION = ("torch", "onnx", "onnxscript", "matplotlib", "safetensors", "tqdm", "ai_edge_litert",
               "ai_edge_quantizer", "tflite_runtime", "tensorflow")

BLOCKER = '''
import os, sys
_blocked = tuple(m for m in os.environ.get("EDGERNN_TEST_BLOCK", "").split(",") if m)
class _Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in _blocked:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, _Blocker())
'''


@pytest.fixture(scope="module")
def device(tmp_path_factory):
    site = tmp_path_factory.mktemp("device-site")
    (site / "sitecustomize.py").write_text(BLOCKER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)]),
           "EDGERNN_TEST_BLOCK": ",".join(WORKSTATION)}

    def edgernn(*args, cwd=None):
        return subprocess.run([sys.executable, "-m", "edgernn", *map(str, args)], env=env, cwd=cwd or site,
                              capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)

    return edgernn


def test_the_blocker_blocks(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "EDGERNN_TEST_BLOCK": "torch"}
    (tmp_path / "sitecustomize.py").write_text(BLOCKER)
    r = subprocess.run([sys.executable, "-c", "import torch"], env=env, capture_output=True, text=True)
    assert r.returncode != 0 and "No module named 'torch'" in r.stderr


def test_train_says_what_to_install_one_line_each(device, tmp_path):
    r = device("train", "--task", "sum", "--out", tmp_path / "run", "--epochs", "1")
    assert r.returncode == 2, r.stderr
    assert r.stdout == "" and "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert [line.split(" needs ")[1].split(",")[0] for line in lines] == ["torch", "safetensors", "matplotlib", "tqdm"]
    assert all(line.startswith("error: edgernn train needs ") and "pip install" in line for line in lines)
    assert "download.pytorch.org/whl/cpu" in lines[0]
    assert not (tmp_path / "run").exists()  # checked before any work


@pytest.mark.parametrize("args,packages", [
    (["export", BUNDLE, "--out", "b"], ["onnx", "safetensors"]),
    (["export", BUNDLE, "--out", "b", "--format", "onnx,tflite", "--quantize", "int8-static"],
     ["onnx", "safetensors", "tqdm", "ai-edge-litert", "ai-edge-quantizer"]),
    (["validate", BUNDLE], ["onnx", "ai-edge-litert (or tflite-runtime) (for the bundle's .tflite variants)"]),
    (["evaluate", BUNDLE, "--plot", "p.png"], ["matplotlib (for --plot)"]),
    (["compare", "--task", "sum", "--epochs", "1"], ["torch", "safetensors", "onnx", "matplotlib", "tqdm"]),
])
def test_workstation_commands_check_before_work(device, args, packages):
    r = device(*args)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert [line.split(" needs ", 1)[1].split(", which")[0] for line in lines] == packages


def test_evaluate_skips_tflite_variants_and_says_so_once(device):
    r = device("evaluate", BUNDLE)
    assert r.returncode == 0, r.stderr
    assert "onnx-window-fp32" in r.stdout and "onnx-step-fp32" in r.stdout
    skipped = [line for line in r.stdout.splitlines() if line.startswith("skipped ")]
    assert len(skipped) == 1 and skipped[0].startswith("skipped 8 variants (tflite-window-fp32 … tflite-step-int8-static)")
    assert "pip install 'edgernn[litert]'" in skipped[0]


def test_verify_prints_the_missing_runtime_hint_once(device):
    r = device("verify", BUNDLE)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("which is not installed") == 1, r.stdout
    assert "skipped 8 variants: running a TFLite model needs ai-edge-litert" in r.stdout


def test_bench_skips_tflite_variants_with_one_note(device):
    r = device("bench", BUNDLE, "--repeat", "3", "--cold-runs", "0", "--batch", "2", "--json")
    assert r.returncode == 0, r.stderr
    import json

    report = json.loads(r.stdout)
    assert {v["format"] for v in report["variants"]} == {"onnx"} and len(report["variants"]) == 8
    assert len(report["notes"]) == 1 and report["notes"][0].startswith("skipped tflite-window-fp32, tflite-step-fp32, ")
    assert report["notes"][0].count("which is not installed") == 1
