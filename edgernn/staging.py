"""Output folders that appear whole or not at all, and replace an old one without a gap.

Work is written into a hidden sibling folder ``.NAME.XXXX.partial``; only when everything succeeded
does it replace the target. Replacing swaps the two folders in one ``renameat2(RENAME_EXCHANGE)``
call where the system has it (Linux 3.15+), so at every instant the path holds the old folder or the
new one; elsewhere the old folder is moved to ``.NAME.old`` just before the new one takes its place,
and a later run (or ``recover``) puts it back if a crash struck in between.

One writer at a time: a lock file ``.NAME.lock`` beside the target is held (``flock``) while the
folder is staged and swapped; a second writer to the same target stops with one line. A failure
removes the staging folder, so nothing half-written is left behind; leftovers of a killed run are
cleaned up by the next one.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from edgernn.bundle import current_umask
from edgernn.errors import BadInputError

# Files that mark a folder as edgernn's own output, which may therefore be replaced.
OWN_MARKERS = ("manifest.json", "checkpoint.json", "resume.pt")
AT_FDCWD = -100
RENAME_EXCHANGE = 2


def check_target(target: Path) -> None:
    """Refuse an output path edgernn may not replace; call it before long work, too."""
    target = Path(target)
    for folder in target.parents:
        if folder.exists():
            if not folder.is_dir():
                raise BadInputError(f"{target}: cannot write here, {folder} is a file, not a folder")
            break
    if target.is_symlink() and not target.exists():
        raise BadInputError(f"{target}: is a broken symlink; remove it or choose another folder")
    if target.exists():
        if not target.is_dir():
            raise BadInputError(f"{target}: exists and is a file; give a folder path for the output")
        try:
            entries = any(target.iterdir())
        except PermissionError:
            raise BadInputError(f"{target}: permission denied; choose a folder you can write") from None
        if entries and not any((target / m).exists() for m in OWN_MARKERS):
            raise BadInputError(
                f"{target}: folder exists and was not written by edgernn; choose a new or empty folder"
            )


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically; False where the system cannot (then nothing was changed)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False  # an old kernel, or a filesystem without exchange
    raise OSError(code, os.strerror(code), str(a))


def _old(target: Path) -> Path:
    return target.with_name(f".{target.name}.old")


def recover(target: Path) -> list[str]:
    """Undo what a killed writer left beside ``target`` (call with the lock held); what was done, in words."""
    target, done = Path(target), []
    old = _old(target)
    if old.is_dir():
        if not target.exists():  # killed between the two renames of the fallback: put the old folder back
            old.rename(target)
            done.append(f"restored {target} from {old.name}")
        else:
            shutil.rmtree(old, ignore_errors=True)
            done.append(f"removed {old.name}")
    for leftover in target.parent.glob(f".{glob_escape(target.name)}.*.partial"):
        shutil.rmtree(leftover, ignore_errors=True)
        done.append(f"removed {leftover.name}")
    return done


def glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


@contextmanager
def target_lock(target: Path) -> Iterator[None]:
    """Hold ``.NAME.lock`` beside ``target``; another holder means one line and exit 2, not a wait."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock, the rename still never leaves a half-written folder
        yield
        return
    path = target.with_name(f".{target.name}.lock")
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666 & ~current_umask())
        except OSError as e:
            raise BadInputError(f"{target}: cannot write beside it ({e.strerror or e}); choose a writable folder") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise BadInputError(f"{target}: another edgernn process is writing this folder right now; "
                                "wait for it to finish, or choose another --out") from None
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino  # not unlinked by a holder that just finished
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        yield
    finally:
        try:
            os.unlink(path)  # while still holding it: a waiter that opened the old inode retries
        finally:
            os.close(fd)


@contextmanager
def staged_dir(target: Path) -> Iterator[Path]:
    target = Path(target)
    check_target(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise BadInputError(f"{target}: cannot create its folder ({e.strerror or e})") from None
    with target_lock(target):
        recover(target)
        check_target(target)  # again: another writer may have finished while this one worked
        try:
            tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
        except OSError as e:
            raise BadInputError(f"{target}: cannot write here ({e.strerror or e}); choose a writable folder") from None
        tmp.chmod(0o777 & ~current_umask())  # mkdtemp makes 0700; give what mkdir would
        try:
            yield tmp
            publish(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise


def publish(tmp: Path, target: Path) -> None:
    """Put the finished folder ``tmp`` at ``target``; an old folder there is replaced without a gap."""
    if not target.exists():
        tmp.rename(target)
        return
    if _exchange(tmp, target):  # target now holds the new folder, tmp the old one
        shutil.rmtree(tmp, ignore_errors=True)
        return
    old = _old(target)
    shutil.rmtree(old, ignore_errors=True)
    target.rename(old)
    tmp.rename(target)  # a crash just before this line: the next run's recover() restores ``old``
    shutil.rmtree(old, ignore_errors=True)
