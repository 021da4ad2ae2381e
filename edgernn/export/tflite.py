"""TFLite (LiteRT) export: window and step graphs in fp32, fp16, dynamic int8 and full int8.

The route:

1. The fp32 step graph is written from the weights with LiteRT's flatbuffer schema (``tflite_step``).
2. fp16: ``ai-edge-quantizer`` on the fp32 step graph. int8-dynamic / int8-static (``tflite_int8``):
   the step graph's row-scaled layout, its weights GPTQ-rounded, the quantizer (full integer with
   int16 activations), then the head corrected so the outputs on the calibration windows match fp32's.
3. The window graph of each precision is a WHILE loop around that step graph (``tflite_window``):
   dynamic batch and time, and equal to stepping.

Why this route, with its measurements: docs/design-quantization-notes.md, "Measurements behind the code".

Nothing here imports torch or tensorflow; ``ai-edge-litert`` and ``ai-edge-quantizer`` are imported
inside the functions that need them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from edgernn import __version__
from edgernn.errors import ExportError
from edgernn.export.tflite_builder import with_metadata
from edgernn.export.tflite_int8 import INT8_PRECISIONS, head_note, int8_step
from edgernn.export.tflite_quantize import PRECISIONS, precision_report, quantize_step
from edgernn.export.tflite_step import step_model_bytes
from edgernn.export.tflite_window import wrap_step
from edgernn.parity import probe_inputs
from edgernn.spec import ModelSpec

GRAPHS = ("window", "step")
CALIBRATION_WINDOWS = 256  # calibration windows used at most (each gives T step feeds)
DEFAULT_CALIBRATION_WINDOWS = 64


@dataclass(frozen=True)
class TfliteVariant:
    """One .tflite file: its bytes and what the manifest says about it."""

    name: str  # "tflite-window-fp32", "tflite-step-int8-static", …
    file: str  # "model.tflite", "model.step.int8-static.tflite", …
    graph: str  # "window" | "step"
    precision: str  # "fp32" | "fp16" | "int8-dynamic" | "int8-static"
    data: bytes = field(repr=False)
    inputs: tuple[tuple[str, tuple], ...]
    outputs: tuple[tuple[str, tuple], ...]
    precision_report: tuple[dict, ...]
    seconds: float
    notes: str = ""
    quantization: dict = field(default_factory=dict)  # how an int8 variant was made (tflite_int8)

    @property
    def size(self) -> int:
        return len(self.data)


def variant_name(graph: str, precision: str) -> str:
    return f"tflite-{graph}-{precision}"


def file_name(graph: str, precision: str) -> str:
    """``model.tflite``, ``model.step.tflite``, ``model.fp16.tflite``, ``model.step.int8-static.tflite``."""
    parts = ["model"] + (["step"] if graph == "step" else []) + ([] if precision == "fp32" else [precision])
    return ".".join(parts) + ".tflite"


def tensor_io(spec: ModelSpec, graph: str) -> tuple[tuple, tuple]:
    """Names and shapes of a graph's inputs and outputs (the same as the ONNX graphs')."""
    L, H = spec.num_layers, spec.hidden_size
    state = (L, "batch", H)
    cell = spec.has_cell_state
    if graph == "window":
        ins = (("x", ("batch", "time", spec.input_size)),)
        outs = (("y", ("batch", spec.output_size)), ("h_n", state)) + ((("c_n", state),) if cell else ())
    else:
        ins = (("x_t", ("batch", spec.input_size)), ("h_in", state)) + ((("c_in", state),) if cell else ())
        outs = (("y", ("batch", spec.output_size)), ("h_out", state)) + ((("c_out", state),) if cell else ())
    return ins, outs


def default_calibration(spec: ModelSpec) -> np.ndarray:
    """Unit-scale random windows: what normalised data looks like when no training data is given."""
    return probe_inputs(spec, DEFAULT_CALIBRATION_WINDOWS, spec.window or 20, seed=4321)


def _progress(total: int, enabled: bool):
    try:
        from tqdm import tqdm
    except ImportError:
        enabled = False
    if not enabled:
        class _Quiet:
            def update(self, n=1): ...
            def set_postfix_str(self, s): ...
            def close(self): ...
        return _Quiet()
    return tqdm(total=total, desc="TFLite export", unit="file", leave=False)


def tflite_variants(
    spec: ModelSpec,
    weights: Mapping[str, np.ndarray],
    precisions: Sequence[str] = PRECISIONS,
    calibration: np.ndarray | None = None,
    *,
    graphs: Sequence[str] = GRAPHS,
    granularity: str = "tensor",
    progress: bool = True,
) -> list[TfliteVariant]:
    """Every asked (graph, precision) as a ready .tflite file, with its precision report.

    ``calibration``: normalised windows ``(N, T, F)`` the int8 variants are calibrated and
    output-corrected on (at most ``CALIBRATION_WINDOWS`` are used); random unit-scale windows when
    None. ``granularity``: int8 weight scales per ``tensor`` (every runtime) or per ``channel``
    (ai-edge-litert only for int8-dynamic: tflite-runtime 2.14 reads one scale).
    """
    unknown = [p for p in precisions if p not in PRECISIONS]
    if unknown:
        raise ExportError(f"TFLite precisions must be among {', '.join(PRECISIONS)}, got {', '.join(unknown)}")
    bad_graphs = [g for g in graphs if g not in GRAPHS]
    if bad_graphs:
        raise ExportError(f"graphs must be among window, step, got {', '.join(bad_graphs)}")
    if spec.bidirectional:
        raise ExportError("TFLite export covers unidirectional models only (its window graph loops over the "
                          "step graph); export this bidirectional model to ONNX")

    bar = _progress(len(precisions) * len(graphs), progress)
    variants: list[TfliteVariant] = []
    try:
        started = time.perf_counter()
        step_fp32 = step_model_bytes(spec, weights)
        windows = None
        if any(p in INT8_PRECISIONS for p in precisions):
            windows = default_calibration(spec) if calibration is None else np.asarray(calibration, np.float32)
            if windows.ndim != 3 or windows.shape[2] != spec.input_size or len(windows) == 0:
                raise ExportError(f"expected calibration windows of shape (N, T, {spec.input_size}), "
                                  f"got {tuple(windows.shape)}")
            windows = windows[:CALIBRATION_WINDOWS]
        source = "given calibration windows" if calibration is not None else "random unit-scale windows"
        base = time.perf_counter() - started
        for precision in precisions:
            bar.set_postfix_str(precision)
            t0 = time.perf_counter()
            how, notes = {}, ""
            if precision in INT8_PRECISIONS:
                made = int8_step(spec, weights, precision, windows, granularity=granularity, windows_source=source)
                step, how, notes = made.data, made.quantization, made.notes
            else:
                step = quantize_step(step_fp32, precision, None, granularity)
            seconds = base + time.perf_counter() - t0
            for graph in graphs:
                t1 = time.perf_counter()
                data = wrap_step(step, spec) if graph == "window" else step
                data = with_metadata(data, _metadata(spec, graph, precision))
                report = precision_report(data, precision, subgraph=2 if graph == "window" else 0,
                                          notes=head_note(precision))
                ins, outs = tensor_io(spec, graph)
                variants.append(TfliteVariant(
                    name=variant_name(graph, precision), file=file_name(graph, precision), graph=graph,
                    precision=precision, data=data, inputs=ins, outputs=outs, precision_report=tuple(report),
                    seconds=round(seconds + time.perf_counter() - t1, 4),
                    notes="; ".join(n for n in (_graph_note(graph), notes) if n), quantization=how,
                ))
                bar.update(1)
    finally:
        bar.close()
    return variants


def _metadata(spec: ModelSpec, graph: str, precision: str) -> dict[str, str]:
    return {"edgernn.spec": json.dumps(spec.to_dict()), "edgernn.graph": graph,
            "edgernn.precision": precision, "edgernn.version": __version__}


def _graph_note(graph: str) -> str:
    return "WHILE loop over the step graph" if graph == "window" else ""
