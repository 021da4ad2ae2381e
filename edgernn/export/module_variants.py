"""Which variants of a module's bundle can be made, and why not: one table.

A variant is a (format, graph, precision) triple: ``onnx-window-fp32``, ``tflite-step-int8-static``…
What was asked is every format × precision, for the window graph and, where the module streams,
its step graph. Whether edgernn can write one depends on the export path edgernn took:

- ``plain``: recognised as LSTM/GRU → Linear on the last step, no Embedding, projection or
  lengths: written by the same code as a checkpoint (every precision, TFLite too).
- ``recognised``: recognised, but beyond plain (token ids, lengths, ``proj_size``, a head on every
  step or on both directions' final states): edgernn's module writers, ONNX float32.
- ``torch.onnx.export``: anything else: the torch exporters, ONNX float32.

``RULES`` is the table: the first rule that applies to a variant says why it cannot be made.
Adding a capability (say, a weight-only quantizer for any graph) is removing or narrowing a row.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from edgernn.errors import BadInputError
from edgernn.quantize import PRECISIONS as QUANTIZED

FORMATS = ("onnx", "tflite")
PRECISIONS = ("fp32", *QUANTIZED)
PATHS = ("plain", "recognised", "torch.onnx.export")


@dataclass(frozen=True)
class Wanted:
    format: str
    graph: str  # "window" | "step"
    precision: str

    @property
    def name(self) -> str:
        return f"{self.format}-{self.graph}-{self.precision}"


@dataclass(frozen=True)
class ModuleKind:
    """What the rules need to know about the module and the request."""

    path: str  # one of PATHS
    beyond: str = ""  # why the module is not plain, e.g. "it takes token ids; it takes lengths"
    bidirectional: bool = False
    calibration: bool = False  # calibration windows were given
    streams: bool = False  # a step graph is written
    cell: str = ""  # "lstm" | "gru" where known


def _quantizer_scope(v: Wanted, k: ModuleKind) -> str:
    graph = "its graph comes from torch.onnx.export" if k.path == "torch.onnx.export" else f"this module {k.beyond}"
    return (f"edgernn writes {v.precision} only for a plain LSTM/GRU → Linear on the last step, and {graph} "
            "(fp32, fp16 and int8-weights can be written for it)")


def _tflite_scope(v: Wanted, k: ModuleKind) -> str:
    if k.path == "torch.onnx.export":
        return ("edgernn writes TFLite only for a module it recognises as LSTM/GRU → Linear on the last step; "
                "this one went through torch.onnx.export (no TFLite converter is used)")
    return f"edgernn's TFLite writers cover a plain LSTM/GRU → Linear on the last step, and this module {k.beyond}"


# (applies, reason): the first row that applies to a variant is why it cannot be made.
RULES: list[tuple[Callable[[Wanted, ModuleKind], bool], Callable[[Wanted, ModuleKind], str]]] = [
    (lambda v, k: v.format == "tflite" and k.bidirectional,
     lambda v, k: "TFLite covers unidirectional RNNs only (its window graph loops over the step graph)"),
    (lambda v, k: v.format == "tflite" and k.path != "plain", _tflite_scope),
    # beyond plain: fp16 and int8-weights (weight-only, any graph) are written; int8 compute is not
    (lambda v, k: v.precision not in ("fp32", "fp16", "int8-weights") and k.path != "plain", _quantizer_scope),
    (lambda v, k: v.format == "onnx" and v.precision == "int8-dynamic" and k.cell == "gru",
     lambda v, k: "onnxruntime has no int8 GRU kernel (its contrib ops quantize LSTM only); int8-weights is the "
                  "small ONNX file for a GRU"),
    (lambda v, k: v.format == "tflite" and v.precision == "int8-weights",
     lambda v, k: "TFLite's int8-dynamic file is its int8-weight file (int8 weights; XNNPACK computes in int8)"),
    (lambda v, k: v.precision == "int8-static" and not k.calibration,
     lambda v, k: "int8-static needs calibration windows: pass calibration= (or --calibration FILE)"),
]


def why_not(v: Wanted, kind: ModuleKind) -> str:
    """The reason ``v`` cannot be made for this module ("" when it can)."""
    for applies, reason in RULES:
        if applies(v, kind):
            return reason(v, kind)
    return ""


def requested(formats: Sequence[str], precisions: Sequence[str], streams: bool) -> list[Wanted]:
    """formats × graphs × precisions (fp32 always), in a stable order."""
    graphs = ("window", "step") if streams else ("window",)
    return [Wanted(f, g, p) for f in formats for p in PRECISIONS if p == "fp32" or p in precisions for g in graphs]


def check_formats(formats: Sequence[str]) -> tuple[str, ...]:
    """Known format names, ``onnx`` first (the ONNX fp32 window graph is every bundle's reference)."""
    items = [f.strip().lower() for f in formats if f.strip()]
    unknown = [f for f in items if f not in FORMATS]
    if unknown or not items:
        raise BadInputError(f"formats must be among {', '.join(FORMATS)}, got {','.join(items) or 'none'}"
                            f"{' (unknown: ' + ', '.join(unknown) + ')' if unknown else ''}")
    if "onnx" not in items:
        raise BadInputError("formats must include onnx: the ONNX fp32 window graph is every bundle's reference "
                            f"variant, got {','.join(items)}")
    return tuple(f for f in FORMATS if f in items)


@dataclass(frozen=True)
class Plan:
    made: tuple[Wanted, ...]
    refused: tuple[tuple[Wanted, str], ...]

    @property
    def formats(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(v.format for v in self.made))

    @property
    def quantize(self) -> tuple[str, ...]:
        return tuple(p for p in PRECISIONS[1:] if any(v.precision == p for v in self.made))

    def not_written(self) -> list[dict[str, str]]:
        return [{"variant": v.name, "reason": reason} for v, reason in self.refused]

    def refusal_line(self) -> str:
        grouped: dict[str, list[str]] = {}
        for v, reason in self.refused:
            grouped.setdefault(reason, []).append(v.name)
        parts = [f"{', '.join(names)}: {reason}" for reason, names in grouped.items()]
        return (f"cannot write {len(self.refused)} of the {len(self.made) + len(self.refused)} variants asked, "
                f"nothing written ({'; '.join(parts)}); pass best_effort=True (--best-effort) to write the rest")


def plan(kind: ModuleKind, formats: Sequence[str], precisions: Sequence[str]) -> Plan:
    """Split what was asked into what will be written and what cannot be, with the reason."""
    made, refused = [], []
    for v in requested(formats, precisions, kind.streams):
        reason = why_not(v, kind)
        (refused.append((v, reason)) if reason else made.append(v))
    p = Plan(tuple(made), tuple(refused))
    return p
