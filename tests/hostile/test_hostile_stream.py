"""`run --stream` under hostile input: binary garbage, deep JSON, closed stdin, missing --input, and an
existing --output that must stay untouched until the stream has answered something. Memory stays flat:
only the first few bad lines are remembered."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pytest
from hostile_fixtures import bundle, not_root, small_bundle, windows  # noqa: F401  (fixtures)
from hostile_helpers import REPO, invoke, leftovers, problems


def cli_process(args, stdin_bytes=None, shell_redirect="", env_extra=None):
    """The real `edgernn` in a fresh process (for what only a real process has: fds, locale, signals)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), **(env_extra or {})}
    command = " ".join([sys.executable, "-m", "edgernn", *[f"'{a}'" for a in map(str, args)]]) + shell_redirect
    return subprocess.run(["bash", "-c", command], input=stdin_bytes, capture_output=True, env=env, timeout=60)


def one_line(stderr: bytes) -> str:
    text = stderr.decode("utf-8", "replace").strip()
    assert "Traceback" not in text and "internal error" not in text, text
    return text


def test_binary_garbage_on_stdin_under_strict_utf8_is_skipped_line_by_line(bundle):
    data = b"0.1\n\xff\xfe\x00\x9f garbage \xc3\x28\n0.2\n" + bytes(range(128, 256)) + b"\n0.3\n"
    proc = cli_process(["run", bundle, "--stream"], data, env_extra={"LC_ALL": "C.UTF-8", "PYTHONUTF8": "1"})
    assert proc.returncode == 0, proc.stderr
    answers = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert [a["frame"] for a in answers] == [1, 2, 3]  # every good frame answered
    err = one_line(proc.stderr).splitlines()
    assert err[-1] == "stream ended: 3 frames, 2 bad lines skipped, 0 resets"
    assert "line 2:" in err[0] and "binary" in err[0]


def test_binary_garbage_with_on_error_stop_is_one_line(bundle):
    proc = cli_process(["run", bundle, "--stream", "--on-error", "stop"], b"\xff\xfe\n",
                       env_extra={"LC_ALL": "C.UTF-8"})
    assert proc.returncode == 2
    assert len(one_line(proc.stderr).splitlines()) == 1


def test_stdin_closed_at_the_fd_level_is_one_line(bundle):
    proc = cli_process(["run", bundle, "--stream"], shell_redirect=" <&-")
    assert proc.returncode == 2
    assert one_line(proc.stderr) == "error: stdin is closed: pipe frames in, or give --input FILE"


def test_deeply_nested_json_line_is_a_bad_line(bundle):
    lines = "0.1\n" + "[" * 200_000 + "\n" + "[" * 50 + "0.5" + "]" * 50 + "\n0.2\n"
    result = invoke(["run", bundle, "--stream"], input=lines)
    assert problems(result) == []
    assert result.exit_code == 0
    assert len(result.stdout.splitlines()) == 2
    assert "2 bad lines skipped" in result.stderr


@pytest.mark.parametrize("what", ["missing", "directory"])
def test_stream_input_missing_or_a_directory_is_one_line(what, bundle, tmp_path):
    path = tmp_path / "frames.txt" if what == "missing" else tmp_path
    result = invoke(["run", bundle, "--stream", "--input", path])
    assert problems(result) == [] and result.exit_code == 2
    assert ("no such file" if what == "missing" else "got a directory") in result.stderr


def test_on_error_stop_leaves_an_existing_output_untouched(bundle, tmp_path):
    out = tmp_path / "answers.jsonl"
    out.write_text("yesterday's answers\n")
    result = invoke(["run", bundle, "--stream", "--on-error", "stop", "--output", out], input="not a frame\n0.5\n")
    assert problems(result) == [] and result.exit_code == 2
    assert "line 1" in result.stderr
    assert out.read_text() == "yesterday's answers\n"
    assert leftovers(tmp_path) == []


def test_on_error_stop_after_answers_keeps_the_answers(bundle, tmp_path):
    out = tmp_path / "answers.jsonl"
    out.write_text("yesterday's answers\n")
    result = invoke(["run", bundle, "--stream", "--on-error", "stop", "--output", out], input="0.5\n0.6\nbad\n0.7\n")
    assert result.exit_code == 2 and "line 3" in result.stderr
    assert [json.loads(line)["frame"] for line in out.read_text().splitlines()] == [1, 2]
    assert leftovers(tmp_path) == []


def test_a_clean_stream_replaces_the_output(bundle, tmp_path):
    out = tmp_path / "answers.csv"
    out.write_text("old\n")
    result = invoke(["run", bundle, "--stream", "--output", out], input="0.5\n0.6\n")
    assert result.exit_code == 0
    assert out.read_text().splitlines()[0].startswith("frame,step")
    assert len(out.read_text().splitlines()) == 3 and leftovers(tmp_path) == []


def test_stream_memory_keeps_only_the_first_bad_lines():
    from edgernn.runtime.stream_io import FIRST_ERRORS, run_stream

    class Echo:  # a session stand-in: the parsing and bookkeeping are what is measured here
        spec = type("Spec", (), {"input_size": 1})()
        steps = 0

        def step(self, frame):
            self.steps += 1
            return type("P", (), {"records": lambda self: [{"prediction": [0.0]}]})()

        def reset(self):
            self.steps = 0

    lines = ("bad\n" if i % 2 else "0.5\n" for i in range(20_000))
    out = io.StringIO()
    summary = run_stream(Echo(), lines, out)
    assert summary.frames == 10_000 and summary.skipped == 10_000
    assert len(summary.errors) == FIRST_ERRORS
    assert summary.errors[0].startswith("line 2:")
    assert len(out.getvalue().splitlines()) == 10_000


def test_overlong_line_is_refused_without_parsing(bundle):
    result = invoke(["run", bundle, "--stream"], input="0.1," * 400_000 + "\n0.2\n")
    assert result.exit_code == 0 and len(result.stdout.splitlines()) == 1
    assert "characters" in result.stderr


@pytest.mark.parametrize("mode", ["--stream", "--input"])
def test_stdout_closed_at_the_fd_level_is_one_line(mode, bundle, windows):
    args = ["run", bundle, "--stream"] if mode == "--stream" else ["run", bundle, "--input", windows]
    proc = cli_process(args, b"0.5\n", shell_redirect=" >&-")
    assert proc.returncode == 2
    assert one_line(proc.stderr) == "error: stdout is closed: give --output FILE for the predictions"
