"""`bench()`: every variant of a bundle (or a bare model file) timed with ``timing``, its cold start
(``coldstart``), and with a checkpoint PyTorch beside it (``torch_compare``), in one report."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from edgernn.bench.coldstart import cli_cold_start as measure_cli
from edgernn.bench.coldstart import cold_start
from edgernn.bench.timing import (
    DEFAULT_LENGTH, BenchReport, BenchSettings, VariantResult, bench_step, bench_window, machine_info, model_summary,
    speedup,
)
from edgernn.bench.torch_compare import bench_torch, load_reference
from edgernn.bundle import Variant, read_manifest
from edgernn.errors import BadInputError, EdgeRnnError
from edgernn.runtime import load
from edgernn.spec import ModelSpec


def _pick_variants(path: Path, names: Sequence[str]) -> tuple[ModelSpec, list[Variant | None]]:
    """The spec and the variants to bench (``None`` stands for a bare .onnx file)."""
    if not path.is_dir():
        if names:
            raise BadInputError(f"{path} is a single model file: --variant applies to bundles only")
        return load(path).spec, [None]
    manifest = read_manifest(path)
    if names:
        return manifest.spec, [manifest.variant(n) for n in names]
    return manifest.spec, list(manifest.variants)


def bench_variant(path: Path, variant: Variant | None, settings: BenchSettings, length: int) -> VariantResult:
    model = load(path, variant=variant.name if variant else None, threads=settings.threads)
    v = model.variant
    result = VariantResult(name=v.name, graph=v.graph, format=v.format, precision=v.precision, file=v.file,
                           size_bytes=model.path.stat().st_size)
    if v.graph == "window":
        result.window = bench_window(model, settings, length)
    elif v.graph == "step":
        result.step = bench_step(model, settings)
    else:
        raise BadInputError(f"variant {v.name}: unknown graph kind {v.graph!r}; expected window or step")
    if settings.cold_runs:
        result.cold_start = cold_start(path, model, settings, length)
    return result


def bench(
    path: Path | str,
    *,
    variants: Sequence[str] = (),
    settings: BenchSettings | None = None,
    checkpoint: Path | str | None = None,
    cli_cold_start: bool = True,
    progress: Callable[[str], None] = lambda message: None,
) -> BenchReport:
    """Benchmark a bundle (or a bare .onnx file); with ``checkpoint``, PyTorch too, in the same run."""
    path = Path(path)
    settings = settings or BenchSettings()
    spec, chosen = _pick_variants(path, variants)
    reference = None
    if checkpoint is not None:  # read and check it before spending time on the runtime's figures
        reference = load_reference(Path(checkpoint), spec)
    length = settings.length or spec.window or DEFAULT_LENGTH
    report = BenchReport(bundle=str(path), model=model_summary(spec), settings=settings, machine=machine_info())
    if settings.length is None and spec.window is None:
        report.notes.append(f"the model records no training window: windows of {DEFAULT_LENGTH} steps (set --length)")

    skipped: dict[str, list[str]] = {}  # reason → variants: one note per reason, however many it skips
    for variant in chosen:
        progress(f"benchmarking {variant.name if variant else path.name}")
        try:
            report.variants.append(bench_variant(path, variant, settings, length))
        except EdgeRnnError as e:
            if variants or variant is None:  # asked for by name: its failure is the answer
                raise
            skipped.setdefault(str(e), []).append(variant.name)  # e.g. a format this runtime cannot open
    for reason, names in skipped.items():
        report.notes.append(f"skipped {', '.join(names)}: {reason}")

    if cli_cold_start and settings.cold_runs and path.is_dir():
        window_variants = sorted((r for r in report.variants if r.graph == "window"),
                                 key=lambda r: r.name != "onnx-window-fp32")  # the default variant first
        if window_variants:
            progress("cold start of `edgernn run`")
            report.cli_cold_start = measure_cli(path, window_variants[0].name, spec, settings, length)

    if reference is not None:
        progress("PyTorch eager and a plain torch.onnx.export")
        report.pytorch, report.torch_onnx_export = bench_torch(reference, settings, length)
        _add_ratios(report)
    return report


def _add_ratios(report: BenchReport) -> None:
    torch_window = report.pytorch.get("window") if report.pytorch else None
    torch_step = report.pytorch.get("step") if report.pytorch else None
    exported = (report.torch_onnx_export or {}).get("step")
    for r in report.variants:
        if r.window is not None and torch_window is not None:
            r.vs_pytorch = speedup(torch_window.batch1, r.window.batch1)
            r.vs_pytorch_batched = speedup(torch_window.batched, r.window.batched)
        if r.step is not None:
            r.vs_pytorch = speedup(torch_step, r.step.raw)
            r.vs_torch_onnx_export = speedup(exported, r.step.raw)

