"""Seeded fuzzing: mutated model files (checksums fixed up, so the loader reaches them) and mutated manifests
through run, run --stream, verify and info. No signal, no hang, no traceback, no internal error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from hostile_helpers import REPO

SEED, CASES = 20251126, 250  # 2/5 model files in a bundle, 2/5 manifests, 1/5 bare model files


def test_fuzzed_bundles_fail_cleanly(tmp_path):
    worker = Path(__file__).with_name("fuzz_worker.py")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    try:
        proc = subprocess.run([sys.executable, str(worker), str(SEED), str(CASES), str(tmp_path)], env=env,
                              capture_output=True, text=True, timeout=150)
    except subprocess.TimeoutExpired as e:
        last = (e.stderr or b"").decode(errors="replace").strip().splitlines()[-1:]
        raise AssertionError(f"fuzz worker hung at {last}") from None
    last_case = proc.stderr.strip().splitlines()[-1:] if proc.stderr.strip() else []
    assert proc.returncode == 0, f"fuzz worker died (exit {proc.returncode}) at {last_case}: {proc.stderr[-2000:]}"
    reports = [json.loads(line) for line in proc.stdout.splitlines()]
    failures = [r for r in reports if "problems" in r]
    assert failures == [], failures[:5]
    assert reports[-1]["done"] == CASES
    codes = reports[-1]["exit_codes"]
    assert codes.get("run 2", 0) > 0 and codes.get("verify 2", 0) + codes.get("verify 1", 0) > 0  # mutations bite
