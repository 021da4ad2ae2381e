"""Unreadable, unwritable, damaged and lying files: one line and exit 2, nothing written, originals untouched."""

from __future__ import annotations

import builtins
import io
import os
import zipfile

import numpy as np
import pytest
from hostile_fixtures import bundle, not_root, small_bundle, windows  # noqa: F401  (fixtures)
from hostile_helpers import invoke, leftovers, problems, snapshot


def assert_refused(result, *words, code=2):
    assert problems(result) == [], problems(result)
    assert result.exit_code == code
    for word in words:
        assert word in result.stderr, result.stderr


def deny(monkeypatch, target):
    """Make opening ``target`` fail with PermissionError, as chmod 000 does for a normal user (tests run as root)."""
    real_open, real_io_open = builtins.open, io.open

    def guarded(real):
        def open_(file, *args, **kwargs):
            if os.fspath(file) == os.fspath(target) if isinstance(file, (str, os.PathLike)) else False:
                raise PermissionError(13, "Permission denied", os.fspath(target))
            return real(file, *args, **kwargs)
        return open_

    monkeypatch.setattr(builtins, "open", guarded(real_open))
    monkeypatch.setattr(io, "open", guarded(real_io_open))


# ---- permissions ----------------------------------------------------------------------------------


@pytest.mark.parametrize("file", ["manifest.json", "model.onnx"])
def test_unreadable_bundle_file_is_one_line(file, bundle, windows, monkeypatch):
    deny(monkeypatch, bundle / file)
    assert_refused(invoke(["run", bundle, "--input", windows]), "permission denied")


def test_unreadable_bundle_file_for_real(bundle, windows, not_root):
    (bundle / "manifest.json").chmod(0)
    assert_refused(invoke(["run", bundle, "--input", windows]), "permission denied")


@pytest.mark.parametrize("suffix", [".npy", ".csv"])
def test_unreadable_input_is_one_line(suffix, bundle, tmp_path, monkeypatch):
    path = tmp_path / f"x{suffix}"
    if suffix == ".npy":
        np.save(path, np.zeros((1, 20, 1)))
    else:
        path.write_text(",".join(["0.5"] * 20) + "\n")
    deny(monkeypatch, path)
    assert_refused(invoke(["run", bundle, "--input", path]), "permission denied")


def test_unwritable_output_folder_is_one_line(bundle, windows, tmp_path, monkeypatch):
    folder = tmp_path / "ro"
    folder.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access",  # as for a read-only folder
                        lambda path, mode, **kw: False if os.fspath(path) == str(folder) else real_access(path, mode, **kw))
    assert_refused(invoke(["run", bundle, "--input", windows, "--output", folder / "p.jsonl"]), "permission denied")
    assert list(folder.iterdir()) == []


def test_unwritable_output_folder_for_real(bundle, windows, tmp_path, not_root):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    assert_refused(invoke(["run", bundle, "--input", windows, "--output", folder / "p.jsonl"]), "permission denied")


@pytest.mark.parametrize("stream", [False, True])
def test_output_whose_parent_is_a_file_is_one_line(stream, bundle, windows, tmp_path):
    (tmp_path / "file.txt").write_text("keep me")
    args = ["run", bundle, "--output", tmp_path / "file.txt" / "p.jsonl"]
    args += ["--stream"] if stream else ["--input", windows]
    assert_refused(invoke(args, input="0.5\n"), "is a file, not a folder")
    assert (tmp_path / "file.txt").read_text() == "keep me"


def test_output_that_is_a_folder_is_one_line(bundle, windows, tmp_path):
    assert_refused(invoke(["run", bundle, "--input", windows, "--output", tmp_path]), "is a folder")


def test_export_out_whose_parent_is_a_file_is_one_line(tmp_path):
    (tmp_path / "file").write_text("x")
    assert_refused(invoke(["export", tmp_path / "no-run", "--out", tmp_path / "file" / "b"]))


# ---- .npy / .npz that lie -----------------------------------------------------------------------------


def npy_header(shape, dtype="<f8") -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def write_npz(path, members: dict[str, bytes]):
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)


def valid_npy(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


CASES = {
    "npy claiming terabytes": (".npy", lambda p: p.write_bytes(npy_header((10**6, 10**6, 1)) + bytes(64)),
                               "header claims"),
    "npy truncated data": (".npy", lambda p: p.write_bytes(valid_npy(np.zeros((2, 20, 1)))[:-40]), "truncated"),
    "npy of objects": (".npy", lambda p: np.save(p, np.array([{"a": 1}], dtype=object)), "pickled"),
    "npy with a pickle inside": (".npy", lambda p: p.write_bytes(b"\x80\x04\x95" + bytes(40)), "pickled"),
    "npy with a huge header": (".npy", lambda p: p.write_bytes(b"\x93NUMPY\x01\x00\xff\xff" + b"{" * 70_000),
                               "not a valid .npy"),
    "npy of format 9": (".npy", lambda p: p.write_bytes(b"\x93NUMPY\x09\x00" + bytes(64)), "not a valid .npy"),
    "npz of objects": (".npz", lambda p: np.savez(p, x=np.array([{"a": 1}], dtype=object)), "pickled"),
    "npz member truncated": (".npz", lambda p: write_npz(p, {"x.npy": valid_npy(np.zeros((2, 20, 1)))[:100]}),
                             "(array 'x')"),
    "npz member claiming terabytes": (".npz", lambda p: write_npz(p, {"x.npy": npy_header((10**7, 10**7)) + bytes(8)}),
                                      "header claims"),
    "npz cut in half": (".npz", lambda p: p.write_bytes(_npz_bytes()[: len(_npz_bytes()) // 2]), "not a valid .npz"),
    "npz member not npy": (".npz", lambda p: write_npz(p, {"x.npy": b"hello"}), "(array 'x')"),
    "npz without x": (".npz", lambda p: np.savez(p, y=np.zeros(3)), "named 'x'"),
}


def _npz_bytes() -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, x=np.zeros((2, 20, 1)))
    return buffer.getvalue()


@pytest.mark.parametrize("case", list(CASES))
def test_lying_numpy_inputs_are_one_line(case, bundle, tmp_path):
    suffix, write, words = CASES[case]
    path = tmp_path / f"x{suffix}"
    write(path)
    before = snapshot(tmp_path)
    result = invoke(["run", bundle, "--input", path, "--output", tmp_path / "p.jsonl"])
    assert_refused(result, words)
    assert snapshot(tmp_path) == before  # no output, no temporary file left behind


@pytest.mark.parametrize("case", ["npy claiming terabytes", "npy of objects", "npz of objects",
                                  "npz member claiming terabytes", "npz member truncated"])
def test_lying_numpy_training_data_is_refused_before_allocating(case, tmp_path):
    from edgernn.data import load_data
    from edgernn.errors import BadInputError

    suffix, write, _ = CASES[case]
    path = tmp_path / f"d{suffix}"
    write(path)
    with pytest.raises(BadInputError, match="d" + suffix.replace(".", r"\.")):
        load_data(path, head="regression")


def test_lengths_file_of_objects_is_one_line(bundle, windows, tmp_path):
    np.save(tmp_path / "lengths.npy", np.array([{"a": 1}], dtype=object))
    assert_refused(invoke(["run", bundle, "--input", windows, "--lengths", tmp_path / "lengths.npy"]), "pickled")


def test_binary_csv_input_is_one_line(bundle, tmp_path):
    (tmp_path / "x.csv").write_bytes(b"\xff\xfe\x00\x01garbage\n" * 4)
    assert_refused(invoke(["run", bundle, "--input", tmp_path / "x.csv"]), "UTF-8")


def test_no_leftovers_after_refusals(bundle, windows, tmp_path):
    invoke(["run", bundle, "--input", tmp_path / "missing.npy", "--output", tmp_path / "p.jsonl"])
    assert leftovers(tmp_path) == [] and not (tmp_path / "p.jsonl").exists()


@pytest.mark.parametrize("name", ["plot.xyz", "file.txt/plot.png"])
def test_plot_to_a_bad_path_is_one_line_and_nothing_is_written(name, tmp_path):
    pytest.importorskip("matplotlib")
    from edgernn.errors import BadInputError
    from edgernn.plots import _plt, save_figure

    (tmp_path / "file.txt").write_text("keep")
    fig, _ = _plt().subplots()
    with pytest.raises(BadInputError):
        save_figure(fig, tmp_path / name)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]
    assert (tmp_path / "file.txt").read_text() == "keep"
