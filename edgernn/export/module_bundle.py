"""The files and manifest of a bundle exported from a module, and its parity check against the module."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import onnx
import torch

from edgernn.bundle import Manifest, TensorInfo, Variant, atomic_write_bytes, sha256_of
from edgernn.errors import ExportError
from edgernn.export.bundle_writer import _versions
from edgernn.export.module_lint import LintItem, ModuleFacts, batch_first_numpy, probe_inputs
from edgernn.export.module_parity import bundle_parity, module_outputs
from edgernn.parity import VariantReport
from edgernn.runtime import load
from edgernn.runtime.stream import step_fn
from edgernn.spec import ModelSpec

WINDOW, STEP = ("onnx-window-fp32", "model.onnx"), ("onnx-step-fp32", "model.step.onnx")


@dataclass
class Built:
    """The graphs of one export, before they are written."""

    spec: ModelSpec
    window: onnx.ModelProto
    step: onnx.ModelProto | None
    streaming: dict
    exporter: str
    output_time_major: bool = False
    weights: dict | None = None  # recognised: the NumPy reference runs on these
    layers: dict = field(default_factory=dict)
    tried: list = field(default_factory=list)




def tensor_infos(model: onnx.ModelProto) -> tuple[tuple[TensorInfo, ...], tuple[TensorInfo, ...]]:
    def info(v) -> TensorInfo:
        t = v.type.tensor_type
        shape = tuple(d.dim_param or d.dim_value for d in t.shape.dim)
        return TensorInfo(v.name, shape, np.dtype(onnx.helper.tensor_dtype_to_np_dtype(t.elem_type)).name)

    inits = {i.name for i in model.graph.initializer}
    return (tuple(info(v) for v in model.graph.input if v.name not in inits), tuple(info(v) for v in model.graph.output))


def write_files(facts: ModuleFacts, built: Built, tmp: Path, quantize: tuple[str, ...] = ()) -> Manifest:
    """The fp32 graphs, and for each precision in ``quantize`` (``int8-weights``: the weight-only int8 form
    that works on any ONNX graph) its copy of each graph."""
    from edgernn.precisions import describe
    from edgernn.quantize import variant_file
    from edgernn.quantize.report import precision_report, unmet
    from edgernn.quantize.fp16 import weights_to_fp16
    from edgernn.quantize.weight_only import quantize_weights_int8

    files = []
    for (name, file), graph, model in ((WINDOW, "window", built.window), (STEP, "step", built.step)):
        if model is None:
            continue
        files.append((name, file, graph, "fp32", model, {}))
        for precision in quantize:
            if precision == "int8-weights":
                result = quantize_weights_int8(model)  # no calibration windows for a module graph: nearest rounding
                converted, left = result.model, dict(result.skipped)
                how = {"tool": "edgernn.quantize.weight_only (Mul(Cast(int8), scale), standard ONNX)",
                       "rounding": "nearest (no calibration windows for a module graph)"}
            elif precision == "fp16":
                converted, left = weights_to_fp16(model), {}
                how = {"tool": "edgernn.quantize.fp16 (float16 initializers + Cast, standard ONNX)"}
            else:
                raise AssertionError(f"internal: no module-graph writer for {precision}")
            stored = {i.name for i in converted.graph.initializer}
            left.update({i.name: "not an input of an LSTM/GRU/RNN, MatMul or Gemm node (e.g. Conv, Embedding)"
                         for i in model.graph.initializer if i.name in stored and i.data_type == onnx.TensorProto.FLOAT
                         and int(np.prod(i.dims)) >= 16 and i.name not in left})
            files.append((f"onnx-{graph}-{precision}", variant_file(graph, precision), graph, precision, converted,
                          {**how, "left_float": left, **describe("onnx", precision)}))
    variants = []
    for name, file, graph, precision, model, how in files:
        atomic_write_bytes(tmp / file, model.SerializeToString())
        ins, outs = tensor_infos(model)
        report = tuple(precision_report(model, precision)) if precision != "fp32" else ()
        if precision != "fp32" and not [e for e in report if e["achieved"]]:
            raise ExportError(f"{name}: no weight was stored in {precision}")
        how = {**how, "not_stored_as_asked": [e["initializer"] for e in unmet(list(report))]} if report else how
        variants.append(Variant(name=name, file=file, format="onnx", graph=graph, precision=precision,
                                size=(tmp / file).stat().st_size, sha256=sha256_of(tmp / file), inputs=ins,
                                outputs=outs, opset=model.opset_import[0].version, ir_version=model.ir_version,
                                state=built.streaming if graph == "step" else {}, precision_report=report,
                                quantization=how))

    return Manifest(spec=built.spec, variants=tuple(variants), versions={**_versions(), "torch": torch.__version__},
                    streaming=built.streaming, probe=probe(facts, built),
                    created=datetime.now(timezone.utc).isoformat(timespec="seconds"))


def probe(facts: ModuleFacts, built: Built) -> dict:
    """Stored inputs and the module's outputs, for ``edgernn verify`` (full lengths: verify feeds none)."""
    B = 2 if facts.batch_flexible else facts.batch
    inputs = probe_inputs(facts, B, facts.length, seed=1234)
    if facts.takes_lengths:
        inputs = (inputs[0], torch.full_like(inputs[1], facts.length))
    y = module_outputs(facts, inputs, output_time_major=built.output_time_major)[0]
    return {"x": batch_first_numpy(facts, inputs)["x"].tolist(), "outputs": {"y": y.astype(np.float32).tolist()}}


def window_runner(backend):
    def run(feeds):
        return backend.run({k: v for k, v in feeds.items() if k in backend.input_names})

    return run


def check_bundle(facts: ModuleFacts, built: Built, tmp: Path, manifest: Manifest) -> list[VariantReport]:
    windows, steps = {}, {}
    for v in manifest.variants:
        model = load(tmp, variant=v.name)
        if v.graph == "window":
            windows[v.name] = (v.precision, window_runner(model.backend))
        else:
            steps[v.name] = (v.precision, step_fn(model.backend))
    return bundle_parity(facts, manifest.spec, windows, steps, output_time_major=built.output_time_major,
                         weights=built.weights)


def _worst(report: VariantReport, against: str) -> dict:
    cs = [c for c in report.comparisons if c.against == against]
    return {k: max(getattr(c, k) for c in cs) for k in ("max_abs", "max_rel", "mean_abs")} if cs else {}


def finish_manifest(manifest: Manifest, facts: ModuleFacts, built: Built, items: list[LintItem],
                     reports: list[VariantReport], path: str, started: float) -> Manifest:
    by_name = {r.variant: r for r in reports}
    variants = []
    for v in manifest.variants:
        r = by_name.get(v.name)
        parity = {"against": "module", **_worst(r, "module")} if r else dict(v.parity)
        if r and _worst(r, "numpy"):
            parity["numpy"] = _worst(r, "numpy")
        variants.append(replace(v, parity=parity))
    x = facts.example[0]
    unknown = [k for k in ("cell", "input_size", "hidden_size", "num_layers", "head") if getattr(built.spec, k) is None]
    module = {
        "class": facts.name,
        "path": path,
        "exporter": built.exporter,
        "tried": built.tried,
        "layers": built.layers,
        "input": {"name": "x", "dtype": "int64" if facts.takes_ids else "float32", "lengths": facts.takes_lengths,
                  "example_shape": list(x.shape),
                  "layout": "time-major in the module; the bundle takes (batch, time, ...)" if facts.time_major
                  else "batch first"},
        "unknown": unknown,
        "lint": [i.to_dict() for i in items],
        "seconds": round(time.perf_counter() - started, 3),
    }
    return replace(manifest, variants=tuple(variants), module=module)
