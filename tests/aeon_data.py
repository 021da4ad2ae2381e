"""Files from the aeon wheel (UCR/UEA ``.ts`` files, forecasting CSVs), read without importing aeon.

``tools/setup_env.sh`` downloads ``aeon==AEON_VERSION`` with ``--no-deps`` into ``.cache/aeon/``;
``aeon_file("GunPoint/GunPoint_TRAIN.ts")`` unpacks one file of ``aeon/datasets/data/`` next to
the wheel and returns its path, or None when the wheel is absent.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

AEON_VERSION = "1.6.0"
ROOT = Path(__file__).resolve().parent.parent  # the repository
CACHE = ROOT / ".cache" / "aeon"
WHEEL = CACHE / f"aeon-{AEON_VERSION}-py3-none-any.whl"
PREFIX = "aeon/datasets/data/"


def aeon_file(name: str) -> Path | None:
    """The unpacked path of ``aeon/datasets/data/<name>``, or None when the wheel is not downloaded."""
    if not WHEEL.is_file():
        return None
    target = CACHE / "data" / name
    if not target.is_file():
        with zipfile.ZipFile(WHEEL) as z:
            payload = z.read(PREFIX + name)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(target.suffix + ".part")
        tmp.write_bytes(payload)
        tmp.replace(target)
    return target


MISSING = (f"the aeon {AEON_VERSION} wheel is not in {CACHE}; run tools/setup_env.sh "
           f"(it runs `pip download aeon=={AEON_VERSION} --no-deps -d .cache/aeon`)")
