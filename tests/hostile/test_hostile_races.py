"""Races and kills lose nothing: one writer per output folder, a replaced bundle is the old one or the new one
at every instant, and what a killed writer left behind is recovered or cleaned by the next run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from hostile_fixtures import bundle, not_root, small_bundle, windows  # noqa: F401  (fixtures)
from hostile_helpers import REPO, SPEC, invoke, leftovers, problems, snapshot, write_run

from edgernn.errors import BadInputError
from edgernn.staging import _exchange, publish, recover, staged_dir, target_lock


def write_bundle_like(folder: Path, tag: str) -> None:
    (folder / "manifest.json").write_text(f'{{"tag": "{tag}"}}')
    (folder / "model.onnx").write_bytes(tag.encode() * 1000)


def test_a_second_writer_stops_with_one_line_and_the_first_wins(tmp_path):
    target = tmp_path / "out"
    with staged_dir(target) as tmp:
        write_bundle_like(tmp, "first")
        with pytest.raises(BadInputError, match="another edgernn process is writing this folder"):
            with staged_dir(target):
                pass
    assert (target / "manifest.json").read_text() == '{"tag": "first"}'
    assert leftovers(tmp_path) == []


def test_many_concurrent_writers_never_collide(tmp_path):
    target, outcomes = tmp_path / "out", []
    for round_ in range(30):
        barrier = threading.Barrier(3)

        def writer(tag):
            barrier.wait()
            try:
                with staged_dir(target) as tmp:
                    write_bundle_like(tmp, tag)
                outcomes.append("ok")
            except BadInputError as e:
                assert "another edgernn process" in str(e)
                outcomes.append("refused")

        threads = [threading.Thread(target=writer, args=(f"r{round_}w{i}",)) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        tag = (target / "manifest.json").read_text()
        assert (target / "model.onnx").read_bytes() == tag[9:-2].encode() * 1000  # the files of one writer
        assert leftovers(tmp_path) == []
    assert outcomes.count("ok") >= 30 and set(outcomes) <= {"ok", "refused"}


def test_the_cli_loser_of_an_export_race_exits_with_one_line(tmp_path, small_bundle):
    run = write_run(tmp_path / "run", SPEC, SPEC)
    target = tmp_path / "b"
    shutil.copytree(small_bundle, target)
    before = snapshot(target)
    with target_lock(target):  # another export holds the folder
        result = invoke(["export", run, "--out", target])
    assert problems(result) == [] and result.exit_code == 2
    assert "another edgernn process is writing" in result.stderr
    assert snapshot(target) == before and leftovers(tmp_path) == []


def test_replacing_a_bundle_never_leaves_the_path_empty(tmp_path):
    (tmp_path / "probe-a").mkdir()
    (tmp_path / "probe-b").mkdir()
    if not _exchange(tmp_path / "probe-a", tmp_path / "probe-b"):
        pytest.skip("no renameat2(RENAME_EXCHANGE) here: the fallback has a gap that recover() closes")
    shutil.rmtree(tmp_path / "probe-a")
    shutil.rmtree(tmp_path / "probe-b")
    target = tmp_path / "out"
    with staged_dir(target) as tmp:
        write_bundle_like(tmp, "v0")
    missing, stop = [], threading.Event()

    def watch():
        while not stop.is_set():
            if not (target / "manifest.json").exists():
                missing.append(1)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for i in range(1, 60):
            with staged_dir(target) as tmp:
                write_bundle_like(tmp, f"v{i}")
    finally:
        stop.set()
        watcher.join()
    assert missing == []
    assert (target / "manifest.json").read_text() == '{"tag": "v59"}' and leftovers(tmp_path) == []


KILL_BEFORE_PUBLISH = """
import os, signal, sys
from pathlib import Path
from edgernn.staging import staged_dir
with staged_dir(Path(sys.argv[1])) as tmp:
    (tmp / "manifest.json").write_text('{"tag": "new"}')
    os.kill(os.getpid(), signal.SIGKILL)
"""

KILL_BETWEEN_RENAMES = """
import os, signal, sys
from pathlib import Path
import edgernn.staging as staging
staging._exchange = lambda a, b: False          # the fallback: two renames
real_rename = Path.rename
def rename(self, target):
    if self.name.endswith(".partial"):          # the second rename: die just before it
        os.kill(os.getpid(), signal.SIGKILL)
    return real_rename(self, target)
Path.rename = rename
with staging.staged_dir(Path(sys.argv[1])) as tmp:
    (tmp / "manifest.json").write_text('{"tag": "new"}')
"""


def run_and_get_killed(script: str, target: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", script, str(target)], env=env, timeout=60, capture_output=True)
    assert proc.returncode == -9, proc.stderr


def test_a_writer_killed_before_publishing_leaves_the_old_bundle_and_the_next_run_cleans_up(tmp_path):
    target = tmp_path / "out"
    with staged_dir(target) as tmp:
        write_bundle_like(tmp, "old")
    before = snapshot(target)
    run_and_get_killed(KILL_BEFORE_PUBLISH, target)
    assert snapshot(target) == before
    assert any(name.endswith(".partial") for name in leftovers(tmp_path))
    with staged_dir(target) as tmp:
        write_bundle_like(tmp, "next")
    assert leftovers(tmp_path) == []


def test_a_writer_killed_between_the_fallback_renames_is_recovered(tmp_path, small_bundle, windows):
    target = tmp_path / "out"
    shutil.copytree(small_bundle, target)
    before = snapshot(target)
    run_and_get_killed(KILL_BETWEEN_RENAMES, target)
    assert not target.exists()  # the gap the fallback has, and that recovery closes
    result = invoke(["run", target, "--input", windows])
    assert problems(result) == [] and result.exit_code == 2
    assert ".out.old beside it holds the bundle an interrupted export was replacing" in result.stderr
    with target_lock(target):
        assert recover(target)[0].startswith("restored")
    assert snapshot(target) == before and leftovers(tmp_path) == []
    assert invoke(["run", target, "--input", windows]).exit_code == 0


def test_a_stale_lock_file_does_not_block(tmp_path):
    target = tmp_path / "out"
    (tmp_path / ".out.lock").write_text("")  # left by a killed writer: nobody holds it
    with staged_dir(target) as tmp:
        write_bundle_like(tmp, "x")
    assert (target / "manifest.json").exists() and leftovers(tmp_path) == []


def test_publish_by_exchange_keeps_no_old_copy(tmp_path):
    target, new = tmp_path / "out", tmp_path / ".out.1.partial"
    target.mkdir()
    new.mkdir()
    write_bundle_like(target, "old")
    write_bundle_like(new, "new")
    publish(new, target)
    assert (target / "manifest.json").read_text() == '{"tag": "new"}' and leftovers(tmp_path) == []
