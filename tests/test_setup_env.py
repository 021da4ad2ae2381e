"""`tools/setup_env.sh`: the pip calls it makes, with and without TORCH_INDEX_URL (a fake python logs them)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def pip_calls(tmp_path: Path, **env: str) -> list[str]:
    (tmp_path / "tools").mkdir()
    shutil.copy(ROOT / "tools" / "setup_env.sh", tmp_path / "tools" / "setup_env.sh")
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    log = tmp_path / "calls.log"
    fake = bin_dir / "python"
    fake.write_text(f'#!/bin/sh\necho "$*" >> "{log}"\n')
    fake.chmod(0o755)
    (bin_dir / "activate").write_text(f'PATH="{bin_dir}:$PATH"\n')
    clean = {k: v for k, v in os.environ.items() if k not in ("TORCH_INDEX_URL", "TORCH_VERSION")}
    subprocess.run(["bash", str(tmp_path / "tools" / "setup_env.sh")], env={**clean, **env}, check=True, timeout=60)
    return log.read_text().splitlines()


def test_default_installs_the_pinned_torch_from_the_configured_index(tmp_path):
    calls = pip_calls(tmp_path)
    assert calls[:2] == ["-m pip install --quiet --upgrade pip",
                         '-m pip install --quiet torch==2.13.0 -e .[dev,tflite]']
    assert not any("index-url" in c for c in calls)
    # the rest only fetches test data: wheels downloaded without dependencies, never imported
    pip = [c for c in calls[2:] if c.startswith("-m pip")]
    assert all(c.startswith("-m pip download --quiet --no-deps") for c in pip), calls


def test_torch_index_url_installs_torch_from_that_index_first(tmp_path):
    calls = pip_calls(tmp_path, TORCH_INDEX_URL="https://download.pytorch.org/whl/cpu")
    assert calls[1] == "-m pip install --quiet torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"
    assert calls[2] == "-m pip install --quiet torch==2.13.0 -e .[dev,tflite]"  # the rest from the usual index
