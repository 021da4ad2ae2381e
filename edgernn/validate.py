"""Validate a bundle: every variant against the NumPy reference and, given a checkpoint, PyTorch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from edgernn.bundle import check_file, read_manifest
from edgernn.checkpoint import load_checkpoint
from edgernn.datasource import DataSource
from edgernn.errors import BadInputError, EdgeRnnError
from edgernn.parity import (
    Comparison,
    VariantReport,
    compare_figures,
    step_through,
    stream_parity,
    torch_window_fn,
    window_parity,
)
from edgernn.runtime import load
from edgernn.runtime.processing import prepare_windows
from edgernn.runtime.stream import step_fn


def reference_weights(bundle_dir: Path, checkpoint: Path | None) -> tuple[dict[str, np.ndarray], bool]:
    """Weights for the references: the checkpoint's, or those held by the bundle's fp32 window graph."""
    manifest = read_manifest(bundle_dir)
    if not manifest.spec.plain or manifest.module.get("path", "recognised") != "recognised":
        raise BadInputError(f"{bundle_dir}: exported from the module {manifest.spec.module} with parts the NumPy "
                            "reference does not describe; its parity against the module was checked at export and "
                            "is in the manifest (edgernn info); export it again to check again")
    if checkpoint is not None:
        ckpt = load_checkpoint(checkpoint)
        if ckpt.spec != manifest.spec:
            raise BadInputError(f"{checkpoint}: this checkpoint's model spec differs from the bundle's; "
                                "pass the checkpoint the bundle was exported from")
        return ckpt.weights, True
    from edgernn.export.onnx_weights import weights_from_window_onnx

    fp32 = manifest.variant("onnx-window-fp32")
    return weights_from_window_onnx(check_file(Path(bundle_dir), fp32), manifest.spec), False


def validate_bundle(
    bundle_dir: Path,
    *,
    checkpoint: Path | None = None,
    weights: Mapping[str, np.ndarray] | None = None,
    with_torch: bool | None = None,
    batches: Sequence[int] = (1, 3, 16),
    stream_batches: Sequence[int] = (1, 5),
    lengths: Sequence[int] | None = None,
    seed: int = 0,
    float_floor: bool = False,
    data_windows: Sequence[np.ndarray] | None = None,
) -> list[VariantReport]:
    """Parity of every variant in the bundle; ``weights`` overrides where the reference weights come from.

    Probes from the model's own data decide (``data_windows``, else drawn from the data source the
    manifest records, when it can still be read); random probes are then drift (see ``edgernn.parity``).
    ``float_floor`` (or a checkpoint): PyTorch's own distance from the float64 reference is the fp32 floor.
    """
    manifest = read_manifest(bundle_dir)
    if weights is None:
        weights, from_checkpoint = reference_weights(bundle_dir, checkpoint)
        if with_torch is None:
            with_torch = from_checkpoint
    torch_fn = torch_window_fn(manifest.spec, weights) if with_torch else None
    floor_fn = torch_fn or (_torch_floor(manifest.spec, weights) if float_floor and _has_torch() else None)
    if data_windows is None:
        data_windows = data_probe_windows(manifest.spec, manifest.data)
    window_variants, step_variants, window_twins = {}, {}, {}
    for v in manifest.variants:
        model = load(bundle_dir, variant=v.name)
        if v.graph == "window":
            window_variants[v.name] = (v.precision, model.window)
        else:
            step_variants[v.name] = (v.precision, step_fn(model.backend))
    for name in step_variants:
        twin = name.replace("-step-", "-window-")
        if twin in window_variants:
            window_twins[name] = window_variants[twin][1]
    reports = window_parity(manifest.spec, weights, window_variants, torch_fn=torch_fn,
                            batches=batches, lengths=lengths, seed=seed, data_windows=data_windows, floor_fn=floor_fn)
    reports.update(stream_parity(manifest.spec, weights, step_variants, windows=window_twins,
                                 batches=stream_batches, lengths=lengths, seed=seed, data_windows=data_windows,
                                 floor_fn=floor_fn))
    _probe_parity(manifest, reports, window_variants, step_variants)
    return list(reports.values())


def _probe_parity(manifest, reports: dict[str, VariantReport], window_variants, step_variants) -> None:
    """Compare each variant with the reference outputs stored at export time (``manifest.probe``).

    This does not depend on where the validation weights came from: without a checkpoint they are
    read back from the bundle itself, and a model file altered after export (with its checksum
    updated) would otherwise agree with itself.
    """
    if not manifest.probe:
        return
    x = np.asarray(manifest.probe["x"], np.float32)
    expected = {k: np.asarray(v, np.float64) for k, v in manifest.probe["outputs"].items()}
    B, T = x.shape[:2]
    for name, (_, run) in window_variants.items():
        got = run(x)
        _record(reports[name], got, expected, B, T, "window")
    for name, (_, step) in step_variants.items():
        ys, final = step_through(step, manifest.spec, x)
        _record(reports[name], {"y": ys[:, -1], **final}, expected, B, T, "stream")


def _record(report: VariantReport, got, expected, batch: int, length: int, mode: str) -> None:
    for output, want in expected.items():
        figures = compare_figures(got.get(output, np.empty(0)), want, report.tolerance)
        report.comparisons.append(Comparison(report.variant, "probe", output, batch, length, *figures, mode=mode,
                                             probe="stored"))


def _torch_floor(spec, weights):
    """PyTorch on these weights, for the fp32 floor; None when they are not laid out as edgernn's own model
    (a module exported under other names): the floor is then left out, never guessed."""
    try:
        return torch_window_fn(spec, weights)
    except (RuntimeError, KeyError):
        return None


def _has_torch() -> bool:
    from importlib.util import find_spec

    return find_spec("torch") is not None


DATA_PROBES = 16  # training windows that decide parity


def data_probe_windows(spec, data: Mapping | None, limit: int = DATA_PROBES, seed: int = 0) -> list[np.ndarray] | None:
    """Normalised training windows at their real lengths, as the graph sees them: one window alone (batch 1)
    and up to ``limit`` together (grouped by length for variable-length data). None when the bundle records
    no data, or the data cannot be read any more (then the random probes decide)."""
    if not data or not spec.plain:
        return None
    try:
        train = DataSource.from_dict(dict(data)).splits().train
    except EdgeRnnError:
        return None
    if train.n == 0 or train.features != spec.input_size:
        return None
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(train.n, min(limit, train.n), replace=False))
    x, _ = prepare_windows(spec, train.x[pick])
    lengths = np.full(len(pick), train.window) if train.lengths is None else train.lengths[pick]
    first = int(lengths[0])
    windows = [x[:1, :first]]
    for length in np.unique(lengths):
        windows.append(np.ascontiguousarray(x[lengths == length, : int(length)]))
    return windows
