"""Export the user's own ``nn.Module``: ``export_module(module, example_input, out="bundle/")``.

1. **Inspect** (``module_lint``): eval mode, hooks on the recurrent layers, probes of other batch
   sizes and lengths.
2. **Choose the path.** A module that *is* (Embedding →) LSTM/GRU → Linear, measured so on probes
   (``module_map``), is written by edgernn's own writers: plain ones by the same code as a
   checkpoint (``export_bundle``: quantization, targets, step graph), the rest — padded batches with
   lengths, proj_size, token ids, a head on every step or on both directions' final states — by
   ``module_graph``. Anything else goes through ``torch.onnx.export`` (``module_torch``).
3. **Lint**, before any conversion: handed to ``on_lint`` (the CLI prints it) and kept in the manifest.
4. **Write and check**: every variant against the module itself (and the NumPy reference where the
   RNN was recognised); the bundle appears only when all pass.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from fnmatch import fnmatch
from pathlib import Path

import numpy as np
from torch import nn

from edgernn.bundle import Manifest, write_manifest
from edgernn.errors import BadInputError, CheckFailedError, EdgeRnnError, ExportError
from edgernn.export import module_graph
from edgernn.export.bundle_writer import export_bundle
from edgernn.export.graph_builder import DEFAULT_IR_VERSION, DEFAULT_OPSET
from edgernn.export.module_bundle import Built, check_bundle, finish_manifest, write_files
from edgernn.export.module_generic import generic_graphs
from edgernn.export.module_lint import RNN_TYPES, LintItem, ModuleFacts, inspect_module, lint
from edgernn.export.module_map import Recognised, recognise
from edgernn.export.module_torch import EXPORTERS, first_line
from edgernn.export.module_variants import ModuleKind, check_formats, plan
from edgernn.export.targets import screen_variants, target_record
from edgernn.parity import VariantReport
from edgernn.quantize import PRECISIONS
from edgernn.spec import HEADS, ModelSpec
from edgernn.staging import staged_dir


@dataclass
class ModuleExportResult:
    bundle_dir: Path
    manifest: Manifest
    reports: list[VariantReport]
    lint: list[LintItem]
    path: str  # "recognised" | "torch.onnx.export"
    exporter: str  # "edgernn" | "torchscript" | "dynamo"
    seconds: float


def export_module(
    module: nn.Module,
    example_input,
    out: Path | str,
    *,
    lengths: bool | None = None,
    head: str | None = None,
    labels: Sequence[str] = (),
    task: str | None = None,
    split: tuple[str, str] | None = None,
    exporter: str = "auto",
    validate: bool = True,
    ir_version: int = DEFAULT_IR_VERSION,
    opset: int = DEFAULT_OPSET,
    on_lint: Callable[[list[LintItem]], None] | None = None,
    formats: Sequence[str] = ("onnx",),
    quantize: Sequence[str] = (),
    calibration=None,
    calibration_source: str = "",
    best_effort: bool = False,
    target=None,
    progress: bool = False,
) -> ModuleExportResult:
    """Export ``module`` (with its weights loaded) to a bundle at ``out``.

    ``example_input``: a tensor ``(batch, time, features)`` — or ``(batch, time)`` token ids — in
    the layout ``forward`` takes, or ``(x, lengths)`` for a forward that takes lengths.
    ``head``/``labels``: what the outputs are (``classification`` gets probabilities at run time);
    left unknown by default. ``split=(backbone, head)``: layer names, to get a step graph for a
    module edgernn does not recognise. ``exporter``: ``auto``, ``edgernn`` (own writers only),
    ``torchscript`` or ``dynamo``.

    ``formats`` (``onnx``, ``tflite``) × ``quantize`` (``fp16``, ``int8-dynamic``, ``int8-static``; fp32
    always) is what is asked, for the window graph and, where the module streams, the step graph.
    Every variant asked is written, or ``ExportError`` names each one that cannot be and why, and
    nothing is written; ``best_effort=True`` writes the rest and lists them in the manifest's
    ``not_written`` (the table is ``edgernn.export.module_variants.RULES``). ``calibration``: windows
    ``(N, T, F)``, batch first, in the module's input units, for int8 (int8-static needs them).
    ``target``: an ``edgernn.export.targets.RuntimeTarget``: variants it cannot run are left out and listed.
    """
    formats = check_formats(formats)
    unknown = [q for q in quantize if q not in PRECISIONS]
    if unknown:
        raise BadInputError(f"quantize must be among {', '.join(PRECISIONS)}, got {', '.join(unknown)}")
    bundle_options = dict(formats=formats, quantize=tuple(quantize), calibration=calibration,
                          calibration_source=calibration_source, best_effort=best_effort, target=target,
                          progress=progress)
    started = time.perf_counter()
    if exporter not in ("auto", "edgernn", *EXPORTERS):
        raise BadInputError(f"exporter must be one of auto, edgernn, {', '.join(EXPORTERS)}, got {exporter!r}")
    if head is not None and head not in HEADS:
        raise BadInputError(f"head must be one of {', '.join(HEADS)}, got {head!r}")
    facts = inspect_module(module, example_input, lengths=lengths, opset=opset)
    try:
        return _export(facts, Path(out), head=head, labels=tuple(labels), task=task, split=split, exporter=exporter,
                       validate=validate, ir_version=ir_version, opset=opset, on_lint=on_lint, started=started,
                       bundle_options=bundle_options)
    except (EdgeRnnError, KeyboardInterrupt):
        raise
    except Exception as e:  # never a stack trace from deep inside an exporter: one line, the cause chained
        raise ExportError(f"cannot export {type(module).__name__}: {type(e).__name__}: {first_line(e)}") from e
    finally:
        if facts.was_training:
            module.train()


def _export(facts: ModuleFacts, out: Path, *, head, labels, task, split, exporter, validate, ir_version, opset,
            on_lint, started, bundle_options) -> ModuleExportResult:
    cls = facts.name.rsplit(".", 1)[-1]
    recognised, reason = None, f"exporter {exporter!r} was asked for"
    if exporter in ("auto", "edgernn"):
        recognised, reason = recognise(facts, head=head, labels=labels, task=task)
    if recognised is None:
        _refuse_generic(facts, cls, reason, exporter)
    backbone, head_layer = _split_layers(facts, split) if split else (None, None)
    if recognised is not None:  # edgernn's own step graph already streams it (unless bidirectional)
        backbone, head_layer = None, None
    path = "recognised" if recognised else "torch.onnx.export"
    streams = backbone is not None or (recognised is not None and not recognised.spec.bidirectional)
    items = lint(facts, path=path, streams=streams, reason=reason if recognised is None else "")
    if on_lint is not None:
        on_lint(items)

    plain = recognised is not None and recognised.spec.plain and not facts.takes_lengths
    variants = _plan(facts, recognised, plain, streams, bundle_options)
    if variants.refused and not bundle_options["best_effort"]:
        raise ExportError(f"{cls}: {variants.refusal_line()}")
    versions = {"ir_version": ir_version, "opset": opset}
    with staged_dir(out) as tmp:
        if plain:
            manifest, numpy_reports = _plain_bundle(recognised, tmp, validate, versions, bundle_options, variants)
            built = Built(recognised.spec, None, None, manifest.streaming, "edgernn", weights=recognised.weights,
                           layers=recognised.layers)
        else:
            if recognised is not None:
                built = _recognised_graphs(facts, recognised, versions)
            else:
                built = generic_graphs(facts, tmp, exporter, validate, versions, head=head, labels=labels, task=task,
                                        reason=reason, backbone=backbone, head_layer=head_layer, split=split)
            manifest, numpy_reports = write_files(facts, built, tmp, variants.quantize), []
            if bundle_options["target"] is not None:  # the same screening as a checkpoint's bundle
                manifest = _screened(manifest, bundle_options["target"], tmp, versions)
            write_manifest(tmp, manifest)
        reports = check_bundle(facts, built, tmp, manifest) if validate else []
        failed = [r for r in reports + numpy_reports if not r.passed]
        if failed:
            worst = "; ".join(f"{r.variant}: max abs {r.worst()['max_abs']:.3g}" for r in failed)
            raise CheckFailedError(f"parity with the module failed, bundle not written ({worst})")
        manifest = finish_manifest(manifest, facts, built, items, reports, path, started)
        manifest = replace(manifest, not_written=tuple(variants.not_written()))
        write_manifest(tmp, manifest)
    return ModuleExportResult(out, manifest, reports, items, path, built.exporter, time.perf_counter() - started)


# --------------------------------------------------------------------------------------------
# Paths
# --------------------------------------------------------------------------------------------


def _refuse_generic(facts: ModuleFacts, cls: str, reason: str, exporter: str) -> None:
    """What neither torch exporter can do: one line, naming the layer."""
    if exporter == "edgernn":
        raise ExportError(f"cannot write {cls} with edgernn's own writers: {reason}")
    own = "edgernn writes it itself only when the module is (Embedding →) LSTM/GRU → Linear"
    if facts.packed:
        raise ExportError(f"cannot export {cls}: its forward packs sequences (pack_padded_sequence), which "
                          f"torch.onnx.export cannot convert, and {own} ({reason})")
    for name, m in facts.recurrent:
        if isinstance(m, nn.LSTM) and m.proj_size:
            raise ExportError(f"cannot export {cls}: LSTM '{name}' has proj_size={m.proj_size}, which torch.onnx.export "
                              f"rejects, and {own} ({reason})")


def _split_layers(facts: ModuleFacts, split) -> tuple[nn.Module, nn.Module]:
    names = [n for n, _ in facts.module.named_modules() if n]
    try:
        backbone_name, head_name = split
        backbone, head = facts.module.get_submodule(backbone_name), facts.module.get_submodule(head_name)
    except (AttributeError, ValueError, TypeError):
        raise BadInputError(f"split must name two layers of the module (backbone, head), got {split!r}; "
                            f"its layers: {', '.join(names)}") from None
    if not isinstance(backbone, RNN_TYPES) or backbone.bidirectional:
        raise BadInputError(f"split: the backbone must be a unidirectional nn.LSTM or nn.GRU, got "
                            f"{type(backbone).__name__} '{backbone_name}'{' (bidirectional)' if getattr(backbone, 'bidirectional', False) else ''}")
    if facts.takes_ids or facts.example[0].shape[-1] != backbone.input_size:
        raise BadInputError(f"split: the backbone '{backbone_name}' must take the module's input as it comes "
                            f"({backbone.input_size} features); the module's input has shape {tuple(facts.example[0].shape)}")
    return backbone, head


def _screened(manifest: Manifest, target, tmp: Path, versions: dict) -> Manifest:
    """Variants the target runtime cannot run are removed and recorded (manifest ``target.refused``)."""
    screening = screen_variants(target, tmp, list(manifest.variants))
    record = target_record(target, versions["ir_version"], versions["opset"], screening, manifest.streaming)
    return replace(manifest, variants=tuple(screening.kept), target=record)


def _beyond_plain(facts: ModuleFacts, spec: ModelSpec) -> str:
    """Why a recognised module is not plain, in words."""
    parts = (["takes token ids (an Embedding in front)"] if spec.vocab_size else []) + \
        (["takes lengths (padded batches)"] if facts.takes_lengths else []) + \
        ([f"has an LSTM with proj_size={spec.proj_size}"] if spec.proj_size else []) + \
        ({"every_step": ["has its head on every step"], "final_state": ["reads both directions' final states"]}
         .get(spec.head_input, []))
    return " and ".join(parts) or "is not plain"


def _plan(facts: ModuleFacts, recognised: Recognised | None, plain: bool, streams: bool, options: dict):
    """What will be written and what cannot be (``module_variants``'s table)."""
    if recognised is None:
        kind = ModuleKind("torch.onnx.export", streams=streams,
                          bidirectional=any(getattr(m, "bidirectional", False) for _, m in facts.recurrent))
    else:
        kind = ModuleKind("plain" if plain else "recognised", beyond="" if plain else _beyond_plain(facts, recognised.spec),
                          bidirectional=recognised.spec.bidirectional, streams=streams, cell=recognised.spec.cell or "")
    kind = replace(kind, calibration=options["calibration"] is not None)
    return plan(kind, options["formats"], options["quantize"])


def _plain_bundle(recognised: Recognised, tmp: Path, validate: bool, versions: dict, options: dict, variants):
    """The same bundle as for a checkpoint, validated against the NumPy reference by ``export_bundle``."""
    inner = tmp / "bundle"
    calibration = options["calibration"]
    if calibration is not None:
        calibration = np.ascontiguousarray(calibration, np.float32)
        F = recognised.spec.input_size
        if calibration.ndim != 3 or calibration.shape[2] != F or not len(calibration):
            raise BadInputError(f"expected calibration windows of shape (N, T, {F}), got {tuple(calibration.shape)}")
    result = export_bundle(recognised.spec, recognised.weights, inner, validate=validate, **versions,
                           formats=variants.formats, quantize=variants.quantize, calibration=calibration,
                           calibration_source=options["calibration_source"] or "given calibration windows",
                           target=options["target"], progress=options["progress"],
                           best_effort=True)  # the plan above decided what is refused; its list is the manifest's
    planned = {v.name for v in variants.made}
    unplanned = [e for e in result.manifest.not_written
                 if any(fnmatch(name, e["variant"]) for name in planned)]
    if unplanned:
        raise ExportError("cannot write " + "; ".join(f"{e['variant']}: {e['reason']}" for e in unplanned))
    for item in inner.iterdir():
        item.rename(tmp / item.name)
    inner.rmdir()
    return result.manifest, list(result.reports)


def _recognised_graphs(facts: ModuleFacts, recognised: Recognised, versions: dict) -> Built:
    spec, weights = recognised.spec, recognised.weights
    window = module_graph.build_window_graph(spec, weights, lengths=facts.takes_lengths, **versions)
    if spec.bidirectional:
        step, streaming = None, {"supported": False, "reason": "bidirectional: the backward direction needs the "
                                                                "whole window, so it cannot stream"}
    else:
        step = module_graph.build_step_graph(spec, weights, **versions)
        streaming = {"supported": True, **module_graph.state_description(spec)}
    return Built(spec, window, step, streaming, "edgernn", weights=weights, layers=recognised.layers)
