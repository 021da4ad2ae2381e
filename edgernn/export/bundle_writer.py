"""Write a bundle: model files, then parity validation, then the manifest — all or nothing."""

from __future__ import annotations

import platform
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from edgernn import __version__
from edgernn.bundle import Manifest, TensorInfo, Variant, atomic_write_bytes, sha256_of, write_manifest
from edgernn.checkpoint import load_checkpoint
from edgernn.errors import CheckFailedError, ExportError
from edgernn.export.graph_builder import DEFAULT_IR_VERSION, DEFAULT_OPSET
from edgernn.export.onnx_step import state_description, step_io
from edgernn.export.onnx_step_fused import build_fused_step_graph
from edgernn.export.onnx_window import build_window_graph, window_io
from edgernn.export.latency import with_latency
from edgernn.parity import VariantReport, probe_inputs
from edgernn.precisions import describe
from edgernn.quantize import GraphVariant, quantized_variants
from edgernn.quantize.report import precision_report
from edgernn.reference import model_forward
from edgernn.spec import ModelSpec
from edgernn.staging import staged_dir
from edgernn.validate import validate_bundle

FORMATS = ("onnx", "tflite")
TFLITE_NOT_WRITTEN = {"int8-weights": "TFLite's int8-dynamic is its int8-weight file: int8 weights, which XNNPACK "
                                      "multiplies with dynamically quantized activations"}


@dataclass
class ExportResult:
    bundle_dir: Path
    manifest: Manifest
    reports: list[VariantReport]
    seconds: float
    refused: tuple[dict, ...] = ()  # keep_passing: variants that failed parity and were left out


def _versions() -> dict[str, str]:
    from importlib import metadata

    import onnx
    import onnxruntime

    versions = {"edgernn": __version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__,
                "numpy": np.__version__, "python": platform.python_version()}
    for package in ("ai-edge-litert", "ai-edge-quantizer"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return versions


def _tensor_infos(pairs) -> tuple[TensorInfo, ...]:
    return tuple(TensorInfo(name, tuple(shape)) for name, shape in pairs)


def _probe(spec: ModelSpec, weights: Mapping[str, np.ndarray]) -> dict:
    """Inputs and reference outputs stored in the manifest, for `edgernn verify` on the device."""
    x = probe_inputs(spec, 2, spec.window or 20, seed=1234)
    y, rnn = model_forward(spec, weights, x)
    outputs = {"y": y, "h_n": rnn.h_n}
    if rnn.c_n is not None:
        outputs["c_n"] = rnn.c_n
    return {"x": x.tolist(), "outputs": {k: np.asarray(v, np.float32).tolist() for k, v in outputs.items()}}


def export_bundle(
    spec: ModelSpec,
    weights: Mapping[str, np.ndarray],
    out: Path,
    *,
    validate: bool = True,
    data_source: Mapping | None = None,
    ir_version: int = DEFAULT_IR_VERSION,
    opset: int = DEFAULT_OPSET,
    target=None,  # edgernn.export.targets.RuntimeTarget: screen variants, record limits and refusals
    quantize: tuple[str, ...] = (),  # precisions beyond fp32: "fp16", "int8-dynamic", "int8-static"
    calibration: np.ndarray | None = None,  # normalised windows (N, T, F) for int8-static
    calibration_source: str = "",
    calibration_margin: float = 0.0,  # widen int8-static's input range by this × its width on each side
    formats: tuple[str, ...] = ("onnx",),  # "onnx" and/or "tflite"
    progress: bool = False,
    best_effort: bool = False,  # write what can be made, list the rest in the manifest's not_written
    measure_latency: bool = True,  # time each variant against fp32 once (batch 1, 1 thread) for the manifest
    keep_passing: bool = False,  # write the variants that pass parity, list the refused ones
) -> ExportResult:
    """Write ``out/`` with the window graph and manifest; validate every variant before calling it done.

    On a parity failure nothing is left at ``out`` and ``CheckFailedError`` lists what failed.
    """
    started = time.perf_counter()
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or "onnx" not in formats:
        raise ExportError(f"formats must be onnx, or onnx,tflite (the ONNX fp32 window graph is every bundle's "
                          f"reference variant), got {','.join(formats) or 'none'}")
    inputs, outputs = window_io(spec)
    window = build_window_graph(spec, weights, ir_version=ir_version, opset=opset)
    files = [("onnx-window-fp32", "model.onnx", "window", "fp32", window, inputs, outputs)]
    if spec.bidirectional:
        streaming = {"supported": False,
                     "reason": "bidirectional: the backward direction needs the whole window, so it cannot stream"}
    elif spec.forecast_transform is not None and spec.forecast_transform.active:
        streaming = {"supported": False, "reason": f"a per-window forecast transform "
                     f"({spec.forecast_transform.describe()}) needs whole windows"}
    elif target is not None and target.refuses_graph("step", opset):
        streaming = {"supported": False, "reason": target.refuses_graph("step", opset)}
    else:
        step_inputs, step_outputs = step_io(spec)
        step = build_fused_step_graph(spec, weights, ir_version=ir_version, opset=opset)
        files.append(("onnx-step-fp32", "model.step.onnx", "step", "fp32", step, step_inputs, step_outputs))
        streaming = {"supported": True, **state_description(spec)}
    extras, not_written = _precision_variants(spec, weights, files, quantize, calibration, calibration_source,
                                              calibration_margin=calibration_margin, ir_version=ir_version,
                                              opset=opset, progress=progress)
    io = {graph: (ins, outs) for _, _, graph, _, _, ins, outs in files}
    files += [(q.name, q.file, q.graph, q.precision, q.model, *io[q.graph]) for q in extras.values() if q.precision != "fp32"]

    if "tflite" in formats and spec.bidirectional:
        names = [f"tflite-window-{p}" for p in ("fp32", *quantize)]
        reason = "TFLite covers unidirectional RNNs only (its window graph loops over the step graph)"
        not_written += [{"variant": n, "reason": reason} for n in names]
        formats = tuple(f for f in formats if f != "tflite")
    tflite, tflite_not_written = _tflite_files(spec, weights, formats, quantize, calibration, progress)
    not_written += tflite_not_written
    if not_written and not best_effort:
        by_reason: dict[str, list[str]] = {}
        for e in not_written:
            by_reason.setdefault(e["reason"], []).append(e["variant"])
        raise ExportError("cannot write " + "; ".join(f"{', '.join(v)}: {r}" for r, v in by_reason.items())
                          + "; nothing written (--best-effort writes the rest and lists these in the manifest)")

    out = Path(out)
    with staged_dir(out) as tmp:
        variants = []
        for name, file, graph, precision, model, ins, outs in files:
            atomic_write_bytes(tmp / file, model.SerializeToString())
            variants.append(Variant(
                name=name, file=file, format="onnx", graph=graph, precision=precision,
                size=(tmp / file).stat().st_size, sha256=sha256_of(tmp / file),
                inputs=_tensor_infos(ins), outputs=_tensor_infos(outs), opset=opset, ir_version=ir_version,
                state=streaming if graph == "step" else {},
                requires=extras[name].requires, precision_report=tuple(extras[name].report),
                quantization=extras[name].quantization,
            ))
        for t in tflite:
            atomic_write_bytes(tmp / t.file, t.data)
            variants.append(Variant(
                name=t.name, file=t.file, format="tflite", graph=t.graph, precision=t.precision,
                size=t.size, sha256=sha256_of(tmp / t.file), inputs=_tensor_infos(t.inputs),
                outputs=_tensor_infos(t.outputs), state=streaming if t.graph == "step" else {},
                precision_report=t.precision_report,
                quantization={**({"tool": "edgernn + ai-edge-quantizer", "notes": t.notes} if t.precision != "fp32" else {}),
                              **describe("tflite", t.precision)},
            ))
        if measure_latency:
            variants = with_latency(tmp, variants, spec.window)
        target_info = {}
        if target is not None:
            from edgernn.export.targets import screen_variants, target_record

            screening = screen_variants(target, tmp, variants)
            variants, target_info = screening.kept, target_record(target, ir_version, opset, screening, streaming)
        manifest = Manifest(
            spec=spec, variants=tuple(variants), versions=_versions(), target=target_info,
            streaming=streaming, not_written=tuple(not_written),
            probe=_probe(spec, weights), data=dict(data_source or {}), created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        )
        write_manifest(tmp, manifest)
        reports: list[VariantReport] = []
        refused: tuple[dict, ...] = ()
        if validate:
            reports = validate_bundle(tmp, weights=weights, with_torch=False, float_floor=True)
            failed = [r for r in reports if not r.passed]
            if failed:
                worst = "; ".join(f"{r.variant}: max abs {r.worst()['max_abs']:.3g}" for r in failed)
                if not keep_passing or any(r.variant == "onnx-window-fp32" for r in failed):
                    hint = "" if keep_passing else "; --keep-passing writes the variants that pass"
                    raise CheckFailedError(f"parity check failed, bundle not written ({worst}){hint}")
                manifest, refused = _without(tmp, manifest, failed)
                reports = [r for r in reports if r.passed]
            by_name = {r.variant: r for r in reports}
            manifest = replace(manifest, variants=tuple(
                replace(v, parity={"against": "numpy", **by_name[v.name].worst()}) if v.name in by_name else v
                for v in manifest.variants
            ))
            write_manifest(tmp, manifest)
    return ExportResult(out, manifest, reports, time.perf_counter() - started, refused)


def _without(folder: Path, manifest: Manifest, failed: list[VariantReport]) -> tuple[Manifest, tuple[dict, ...]]:
    """The manifest without the variants that failed parity (their files removed), and the refusals listed."""
    names = {r.variant for r in failed}
    refused = tuple({"variant": r.variant, "reason": f"parity: max abs {r.worst()['max_abs']:.3g} beyond "
                     f"{r.precision} tolerance (atol {r.tolerance.atol:g}, rtol {r.tolerance.rtol:g})"} for r in failed)
    for v in manifest.variants:
        if v.name in names:
            (folder / v.file).unlink()
    streaming = manifest.streaming
    if "onnx-step-fp32" in names:
        streaming = {"supported": False, "reason": "the fp32 step graph failed parity (export --keep-passing)"}
    manifest = replace(manifest, variants=tuple(v for v in manifest.variants if v.name not in names),
                       refused=refused, streaming=streaming)
    write_manifest(folder, manifest)
    return manifest, refused


def _tflite_files(spec, weights, formats, quantize, calibration, progress):
    """The TFLite variants asked for, and the precisions asked that TFLite has no file for, with the reason."""
    if "tflite" not in formats:
        return [], []
    from edgernn.export.tflite import tflite_variants
    from edgernn.export.tflite_quantize import PRECISIONS as TFLITE_PRECISIONS

    not_written = [{"variant": f"tflite-*-{p}", "reason": TFLITE_NOT_WRITTEN.get(p, f"no TFLite {p} writer")}
                   for p in quantize if p not in TFLITE_PRECISIONS]
    kept = tuple(p for p in quantize if p in TFLITE_PRECISIONS)
    return tflite_variants(spec, weights, ("fp32", *kept), calibration, progress=progress), not_written


def _precision_variants(spec, weights, files, quantize, calibration, calibration_source, **kwargs) -> dict:
    """Name → GraphVariant for the fp32 files (with their precision reports) and every quantized one."""
    graphs = {graph: model for _, _, graph, _, model, _, _ in files}
    out = {name: GraphVariant(name, file, graph, "fp32", model, report=precision_report(model, "fp32"),
                              quantization=describe("onnx", "fp32"))
           for name, file, graph, _, model, _, _ in files}
    not_written: list[dict[str, str]] = []
    if quantize:
        made = quantized_variants(spec, weights, tuple(quantize), window_fp32=graphs["window"],
                                  step_fp32=graphs.get("step"), calibration=calibration,
                                  calibration_source=calibration_source, **kwargs)
        out.update((q.name, q) for q in made.variants)
        not_written = made.not_written
    return out, not_written


def export_checkpoint(checkpoint: Path, out: Path, *, calibration_path: Path | None = None, **kwargs) -> ExportResult:
    """``export_bundle`` on a checkpoint; int8 variants are calibrated on ``calibration_path`` (windows in data
    units) or else on the training split of the data the checkpoint was trained on (int8-dynamic: when there is one)."""
    ckpt = load_checkpoint(checkpoint)
    kwargs.setdefault("data_source", ckpt.data)
    asked = kwargs.get("quantize", ())
    if calibration_path is not None or "int8-static" in asked or ("int8-dynamic" in asked and ckpt.data):
        from edgernn.quantize.calibration import calibration_windows

        kwargs["calibration"], kwargs["calibration_source"] = calibration_windows(
            ckpt.spec, path=calibration_path, data=ckpt.data)
    return export_bundle(ckpt.spec, ckpt.weights, out, **kwargs)
