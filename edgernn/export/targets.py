"""Export for the runtime a device actually has: ``edgernn export --target-runtime onnxruntime==1.16``.

A target runtime decides three things:

- the ONNX **IR version and opset** written: edgernn's defaults (IR 8, opset 17), lowered to what
  the target loads; an explicit ``--opset``/``--ir-version`` above the target's limits is refused;
- which **graphs** can be written at that opset: the step graph uses the opset-13 forms of Split,
  Squeeze and Unsqueeze (sizes and axes as inputs), so a runtime below opset 13 gets the window
  graph only, and the manifest says why it cannot stream;
- which **variants** it can run: every model file is screened after it is written (IR version,
  opset of each domain, contrib ops) and a variant the target cannot run is left out of the bundle,
  with the reason recorded in the manifest and printed.

Where a release's kernels were measured to lag its row (1.15: no opset-19 Identity/Reshape), edgernn
writes one opset lower. The limits come from ONNX Runtime's compatibility table ("ONNX Runtime compatibility", the
"ONNX opset support" section of the onnxruntime docs), rows 1.0 to 1.20. A newer runtime loads
everything an older one does, so a version past the newest row is held to that row's limits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgernn.errors import BadInputError, ExportError
from edgernn.export.graph_builder import DEFAULT_IR_VERSION, DEFAULT_OPSET


@dataclass(frozen=True)
class RuntimeLimits:
    """What one onnxruntime release implements: ONNX opset, ONNX-ML opset and IR version it loads."""

    release: tuple[int, int]
    onnx: str  # the ONNX release it follows
    opset: int
    ml_opset: int
    ir_version: int
    kernels_lag: str = ""  # measured: the release loads `opset` but lacks kernels edgernn's graphs need there

    @property
    def usable_opset(self) -> int:
        """The highest opset edgernn writes for this release: one lower where its kernels lag the table."""
        return self.opset - 1 if self.kernels_lag else self.opset


# Measured with tools/check_old_onnxruntime.py: onnxruntime 1.15.1 loads opset-19 models but has no
# opset-19 kernel for Identity or Reshape ("Could not find an implementation for Reshape(19)").
KERNELS_LAG = {(1, 15): "onnxruntime 1.15 has no opset-19 kernels for Identity and Reshape (measured with 1.15.1)"}

# ONNX Runtime compatibility table (onnxruntime docs, reference/compatibility), newest first.
# Measured with tools/check_old_onnxruntime.py (bundles verified at edgernn's default and at the row's
# top opset; loader limits probed): 1.15.1, 1.16.3, 1.17.3, 1.18.1 and 1.20.1 agree with their rows,
# except that 1.15 also loads IR 9 (the row is conservative) and lacks the kernels noted above.
ONNXRUNTIME_LIMITS: tuple[RuntimeLimits, ...] = tuple(
    RuntimeLimits((1, minor), onnx, opset, ml, ir, KERNELS_LAG.get((1, minor), ""))
    for minor, onnx, opset, ml, ir in (
        (20, "1.16.1", 21, 4, 10),
        (19, "1.16.1", 21, 4, 10),
        (18, "1.16", 21, 4, 10),
        (17, "1.15", 20, 4, 9),
        (16, "1.14.1", 19, 3, 9),
        (15, "1.14", 19, 3, 8),
        (14, "1.13", 18, 3, 8),
        (13, "1.12", 17, 3, 8),
        (12, "1.12", 17, 3, 8),
        (11, "1.11", 16, 2, 8),
        (10, "1.10", 15, 2, 8),
        (9, "1.10", 15, 2, 8),
        (8, "1.9", 14, 2, 7),
        (7, "1.8", 13, 2, 7),
        (6, "1.8", 13, 2, 7),
        (5, "1.7", 12, 2, 7),
        (4, "1.7", 12, 2, 7),
        (3, "1.7", 12, 2, 7),
        (2, "1.6", 11, 2, 6),
        (1, "1.6", 11, 2, 6),
        (0, "1.6", 11, 2, 6),
    )
)

# The lowest opset at which each graph is written: the step graph passes Split sizes and
# Squeeze/Unsqueeze axes as inputs (opset 13); the window graph's LSTM/GRU, Gemm, Gather,
# Transpose, Reshape and Concat are all in opset 7. tests/test_targets.py builds both graphs at
# these opsets and one below, so this table cannot drift from the graph writers.
GRAPH_MIN_OPSET: dict[str, tuple[int, str]] = {
    "window": (7, "LSTM/GRU, Gemm, Gather, Transpose, Reshape and Concat exist from opset 7"),
    "step": (13, "the step graph passes Split sizes and Squeeze/Unsqueeze axes as inputs, forms added in opset 13"),
}

# Contrib ops (domain com.microsoft) in onnxruntime 1.16.3's operator schema registry, read with
# onnxruntime.capi.onnxruntime_pybind11_state.get_all_operator_schema() (tools/check_old_onnxruntime.sh
# prints the same list). A runtime at or after 1.16 has these; older ones are not on record.
CONTRIB_OPS_SINCE_1_16: frozenset[str] = frozenset("""
Attention AttnLSTM BeamSearch BiasAdd BiasDropout BiasGelu BiasSoftmax BiasSplitGelu BifurcationDetector
BitmaskBiasDropout BitmaskDropout CDist ComplexMul ComplexMulConj ConvTransposeWithDynamicPads CropAndResize
DecoderAttention DecoderMaskedMultiHeadAttention DecoderMaskedSelfAttention DequantizeBFP DequantizeLinear
DequantizeWithOrder DynamicQuantizeLSTM DynamicQuantizeMatMul EmbedLayerNormalization ExpandDims FastGelu
FusedConv FusedGemm FusedMatMul FusedMatMulActivation GatedRelativePositionBias GatherND Gelu GemmFastGelu
GreedySearch GridSample GroupNorm GroupQueryAttention Inverse Irfft IsAllFinite LongformerAttention MatMulBnb4
MatMulFpQ4 MatMulInteger16 MatMulIntegerToFloat MatMulNBits MaxpoolWithMask MulInteger MultiHeadAttention
MurmurHash3 NGramRepeatBlock NhwcConv NhwcFusedConv NhwcMaxPool PackedAttention PackedMultiHeadAttention Pad
QAttention QEmbedLayerNormalization QGemm QLinearAdd QLinearAveragePool QLinearConcat QLinearConv
QLinearGlobalAveragePool QLinearLeakyRelu QLinearMul QLinearReduceMean QLinearSigmoid QLinearSoftmax QLinearWhere
QOrderedAttention QOrderedGelu QOrderedLayerNormalization QOrderedLongformerAttention QOrderedMatMul QuantizeBFP
QuantizeLinear QuantizeWithOrder QuickGelu Range ReduceSumInteger RelativePositionBias RemovePadding
RestorePadding Rfft RotaryEmbedding SampleOp Sampling SkipGroupNorm SkipLayerNormalization
SkipSimplifiedLayerNormalization Snpe SparseToDenseMatMul Tokenizer TorchEmbedding TransposeMatMul Trilu Unique
WordConvEmbedding
""".split())
CONTRIB_OPS_RECORDED = (1, 16)

KNOWN_RUNTIMES = ("onnxruntime",)
_TARGET = re.compile(r"^\s*([A-Za-z][A-Za-z0-9_.-]*)\s*==\s*(\d+)\.(\d+)(?:\.(\d+))?\s*$")


@dataclass(frozen=True)
class RuntimeTarget:
    """A runtime a bundle must run on, as ``NAME==VERSION`` (e.g. ``onnxruntime==1.16``)."""

    runtime: str
    version: tuple[int, ...]
    limits: RuntimeLimits
    beyond_table: bool = False  # newer than the newest row: held to that row's limits

    @property
    def label(self) -> str:
        return f"{self.runtime}=={'.'.join(map(str, self.version))}"

    @property
    def release(self) -> tuple[int, int]:
        return self.version[0], self.version[1]

    def pick(self, ir_version: int | None = None, opset: int | None = None) -> tuple[int, int]:
        """The IR version and opset to write: the requested ones (else edgernn's defaults) within the target's limits."""
        lim = self.limits
        for option, asked, most in (("--opset", opset, lim.usable_opset), ("--ir-version", ir_version, lim.ir_version)):
            if asked is not None and asked > most:
                what = "opset" if option == "--opset" else "IR version"
                lag = f": {lim.kernels_lag}" if option == "--opset" and lim.kernels_lag and asked == lim.opset else ""
                raise BadInputError(f"{option} {asked} is newer than {self.label} runs ({what} at most {most}{lag}); "
                                    f"pass {option} {most} or leave it out")
        picked_opset = opset if opset is not None else min(DEFAULT_OPSET, lim.usable_opset)
        picked_ir = ir_version if ir_version is not None else min(DEFAULT_IR_VERSION, lim.ir_version)
        window_min, why = GRAPH_MIN_OPSET["window"]
        if picked_opset < window_min:
            raise BadInputError(f"opset {picked_opset} is too old for edgernn's graphs ({why}); "
                                f"pass --opset {window_min} or higher")
        return picked_ir, picked_opset

    def refuses_graph(self, graph: str, opset: int) -> str | None:
        """Why a graph kind cannot be written at ``opset`` for this target, or None."""
        need, why = GRAPH_MIN_OPSET[graph]
        if opset >= need:
            return None
        return f"{self.label} implements ONNX opset {self.limits.opset}, but {why}; target onnxruntime 1.6 or newer to stream"

    def model_problems(self, model) -> list[str]:
        """Why this target cannot run an ``onnx.ModelProto`` (empty when it can)."""
        lim, problems = self.limits, []
        if model.ir_version > lim.ir_version:
            problems.append(f"written at ONNX IR version {model.ir_version}; {self.label} loads IR version {lim.ir_version} at most")
        domain_limits = {"": lim.usable_opset, "ai.onnx": lim.usable_opset, "ai.onnx.ml": lim.ml_opset}
        for imp in model.opset_import:
            if imp.domain in domain_limits:
                if imp.version > domain_limits[imp.domain]:
                    name = imp.domain or "ai.onnx"
                    lag = f" ({lim.kernels_lag})" if imp.domain in ("", "ai.onnx") and lim.kernels_lag else ""
                    problems.append(f"uses {name} opset {imp.version}; {self.label} runs opset {domain_limits[imp.domain]}{lag}")
            elif imp.domain != "com.microsoft":
                problems.append(f"uses ops of domain {imp.domain!r}, which onnxruntime does not have without a custom-op library")
        contrib = sorted({n.op_type for n in _all_nodes(model.graph) if n.domain == "com.microsoft"})
        if contrib:
            if self.release < CONTRIB_OPS_RECORDED:
                problems.append(f"uses onnxruntime contrib ops ({', '.join(contrib)}); edgernn has no record of which "
                                f"exist before onnxruntime {'.'.join(map(str, CONTRIB_OPS_RECORDED))}")
            else:
                unknown = [op for op in contrib if op not in CONTRIB_OPS_SINCE_1_16]
                if unknown:
                    problems.append(f"uses contrib ops {', '.join(unknown)}, which onnxruntime 1.16 does not have")
        return problems

    def to_dict(self) -> dict[str, Any]:
        return {"runtime": self.label, "limits": {"opset": self.limits.usable_opset, "ml_opset": self.limits.ml_opset,
                                                  "ir_version": self.limits.ir_version},
                "limits_from": f"onnxruntime {self.limits.release[0]}.{self.limits.release[1]} row of the "
                               "ONNX Runtime compatibility table" + (" (newest known row)" if self.beyond_table else "")}


def _all_nodes(graph):
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.g is not None and attr.g.node:
                yield from _all_nodes(attr.g)
            for sub in attr.graphs:
                yield from _all_nodes(sub)


def parse_target(text: str) -> RuntimeTarget:
    """``onnxruntime==1.16`` (or ``==1.16.3``) → a RuntimeTarget; anything else is a BadInputError."""
    m = _TARGET.match(text or "")
    if not m:
        raise BadInputError(f"expected a target runtime as NAME==VERSION, e.g. onnxruntime==1.16, got {text!r}")
    name = m.group(1).lower().replace("_", "-")
    if name not in KNOWN_RUNTIMES:
        raise BadInputError(f"unknown target runtime {m.group(1)!r}; edgernn knows the limits of: {', '.join(KNOWN_RUNTIMES)}")
    version = tuple(int(g) for g in m.groups()[1:] if g is not None)
    release = version[:2]
    newest, oldest = ONNXRUNTIME_LIMITS[0], ONNXRUNTIME_LIMITS[-1]
    if release > newest.release:
        return RuntimeTarget(name, version, newest, beyond_table=True)
    for row in ONNXRUNTIME_LIMITS:
        if row.release == release:
            return RuntimeTarget(name, version, row)
    raise BadInputError(f"no onnxruntime release {'.'.join(map(str, version))} on record; known: "
                        f"{oldest.release[0]}.{oldest.release[1]} to {newest.release[0]}.{newest.release[1]} and newer")


@dataclass
class Screening:
    kept: list = field(default_factory=list)  # Variant objects the target runs
    refused: list[dict[str, str]] = field(default_factory=list)  # {"variant", "file", "reason"}


def screen_variants(target: RuntimeTarget, folder: Path, variants) -> Screening:
    """Split written variants into those the target runs and those it cannot (whose files are removed).

    ONNX files are read with the onnx package (export side). A format the target runtime does not
    read at all (e.g. .tflite for an onnxruntime target) is kept: it is meant for another runtime.
    """
    import onnx

    result = Screening()
    for v in variants:
        if v.format != "onnx":
            result.kept.append(v)
            continue
        path = Path(folder) / v.file
        problems = target.model_problems(onnx.load(str(path), load_external_data=False))
        if problems:
            path.unlink(missing_ok=True)
            result.refused.append({"variant": v.name, "file": v.file, "reason": "; ".join(problems)})
        else:
            result.kept.append(v)
    if not any(v.graph == "window" and v.format == "onnx" for v in result.kept) and result.refused:
        reasons = "; ".join(f"{r['variant']}: {r['reason']}" for r in result.refused)
        raise ExportError(f"{target.label} can run none of the bundle's ONNX window graphs ({reasons})")
    return result


def target_record(target: RuntimeTarget, ir_version: int, opset: int, screening: Screening,
                  streaming: dict[str, Any]) -> dict[str, Any]:
    """What the manifest records about the target: its limits, what was written, what was refused and why."""
    refused = list(screening.refused)
    why = target.refuses_graph("step", opset)
    if why and streaming.get("reason") == why:  # the step graph was not written for this target
        refused.insert(0, {"variant": "onnx-step-*", "file": "", "reason": why})
    return {**target.to_dict(), "ir_version": ir_version, "opset": opset, "refused": refused}


__all__ = ["ONNXRUNTIME_LIMITS", "GRAPH_MIN_OPSET", "RuntimeLimits", "RuntimeTarget", "Screening",
           "parse_target", "screen_variants", "target_record"]
