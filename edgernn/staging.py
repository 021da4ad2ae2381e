"""Output folders that appear whole or not at all.

Work is written into a hidden sibling folder; only when everything succeeded does it replace the
target. A failure removes the staging folder, so nothing half-written is left behind.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from edgernn.bundle import current_umask
from edgernn.errors import BadInputError

# Files that mark a folder as edgernn's own output, which may therefore be replaced.
OWN_MARKERS = ("manifest.json", "checkpoint.json", "resume.pt")


def check_target(target: Path) -> None:
    """Refuse an output path edgernn may not replace; call it before long work, too."""
    target = Path(target)
    if target.exists():
        if not target.is_dir():
            raise BadInputError(f"{target}: exists and is a file; give a folder path for the output")
        if any(target.iterdir()) and not any((target / m).exists() for m in OWN_MARKERS):
            raise BadInputError(
                f"{target}: folder exists and was not written by edgernn; choose a new or empty folder"
            )


@contextmanager
def staged_dir(target: Path) -> Iterator[Path]:
    target = Path(target)
    check_target(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    tmp.chmod(0o777 & ~current_umask())  # mkdtemp makes 0700; give what mkdir would
    try:
        yield tmp
        if target.exists():
            old = target.with_name(f".{target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            target.rename(old)
            tmp.rename(target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
