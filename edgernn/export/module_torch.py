"""``torch.onnx.export`` for modules edgernn does not write itself, and a declared head for the step graph.

Two exporters: TorchScript (``dynamo=False``; fast, writes the IR and opset asked) and torch.export
+ onnxscript (``dynamo=True``; slower, writes IR 10 at opset 18, converted down on request; converts a
few operators TorchScript cannot). Their timings: docs/design.md, "Measurements behind the code".

So ``auto`` runs TorchScript first and falls back to dynamo only when TorchScript fails to convert
or to match the module. Whichever is used, the file is brought to the IR version and opset edgernn
writes (IR 8 / opset 17 by default) on purpose, and checked; parity against the module decides.
Neither exporter handles packed sequences or LSTMs with ``proj_size``: edgernn's own writers do.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import sys
import warnings
from collections.abc import Iterator

import onnx
import torch
from onnx import TensorProto
from torch import nn

from edgernn.errors import ExportError

EXPORTERS = ("torchscript", "dynamo")
DYNAMO_OPSET = 18  # what torch.onnx's dynamo exporter writes natively (IR 8 holds opsets up to 18)
# Element types an IR 8 file cannot hold (float8 came with IR 9, int4 with IR 10).
NEWER_TYPES = {getattr(TensorProto, n) for n in ("FLOAT8E4M3FN", "FLOAT8E4M3FNUZ", "FLOAT8E5M2", "FLOAT8E5M2FNUZ",
                                                 "UINT4", "INT4", "FLOAT4E2M1") if hasattr(TensorProto, n)}


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence the exporters: their progress lines, warnings and the TorchScript graph dump they
    print on failure (from C++, so file descriptors 1 and 2 are redirected, then restored)."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    saved = [os.dup(1), os.dup(2)]
    null = os.open(os.devnull, os.O_WRONLY)
    logging_disabled = logging.root.manager.disable
    logging.disable(logging.CRITICAL)  # torch's log handlers hold their own stream objects
    try:
        os.dup2(null, 1)
        os.dup2(null, 2)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(logging_disabled)
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, null):
            os.close(fd)


def first_line(e: BaseException) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(e)).strip()
    line = text.splitlines()[0] if text else type(e).__name__
    line = line.split(" This is step ")[0]  # the dynamo exporter's boilerplate
    return line if len(line) <= 200 else line[:200] + "…"


class BatchFirst(nn.Module):
    """The bundle's layout around a module: ``x`` batch first in; the first output batch first out."""

    def __init__(self, module: nn.Module, input_time_major: bool, output_time_major: bool):
        super().__init__()
        self.module, self.input_time_major, self.output_time_major = module, input_time_major, output_time_major

    def forward(self, x, *rest):
        y = self.module(x.transpose(0, 1) if self.input_time_major else x, *rest)
        if not self.output_time_major:
            return y
        if isinstance(y, torch.Tensor):
            return y.transpose(0, 1)
        return (y[0].transpose(0, 1), *y[1:])


def settle_versions(model: onnx.ModelProto, *, ir_version: int, opset: int) -> onnx.ModelProto:
    """Bring an exported model to the opset and IR version edgernn writes, or say why it cannot be."""
    current = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), opset)
    if current != opset:
        try:
            model = onnx.version_converter.convert_version(model, opset)
        except Exception as e:
            raise ExportError(f"the exported model uses opset {current} and cannot be converted to {opset}: "
                              f"{first_line(e)}") from None
    if model.functions:
        model = onnx.inliner.inline_local_functions(model)
    if model.ir_version > ir_version:
        used = {t.data_type for t in model.graph.initializer}
        used |= {v.type.tensor_type.elem_type for v in (*model.graph.input, *model.graph.output, *model.graph.value_info)}
        if used & NEWER_TYPES:
            raise ExportError(f"the exported model holds tensor types IR version {ir_version} cannot (IR {model.ir_version})")
        model.ir_version = ir_version
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as e:
        raise ExportError(f"the exported model is not valid at IR {ir_version}, opset {opset}: {first_line(e)}") from None
    return model


def export_window(
    wrapper: nn.Module,
    args: tuple[torch.Tensor, ...],
    *,
    exporter: str,
    input_names: list[str],
    output_names: list[str],
    batch_dynamic: bool,
    time_dynamic: bool,
    ir_version: int,
    opset: int,
) -> tuple[onnx.ModelProto, str]:
    """One exporter's window graph at the IR version and opset asked, and a note when the opset had to
    stay higher (dynamo writes opset 18; its conversion down can break ops). Raises what the exporter raised."""
    with quiet(), torch.no_grad():
        if exporter == "torchscript":
            axes = {"x": {**({0: "batch"} if batch_dynamic else {}), **({1: "time"} if time_dynamic else {})}}
            if len(input_names) > 1 and batch_dynamic:
                axes["lengths"] = {0: "batch"}
            buffer = io.BytesIO()
            torch.onnx.export(wrapper, args, buffer, dynamo=False, opset_version=opset, input_names=input_names,
                              output_names=output_names, dynamic_axes=axes, do_constant_folding=True)
            model = onnx.load_from_string(buffer.getvalue())
        else:
            batch, time_ = torch.export.Dim("batch"), torch.export.Dim("time")
            shapes = [{**({0: batch} if batch_dynamic else {}), **({1: time_} if time_dynamic else {})}]
            shapes += [{0: batch} if batch_dynamic else {}] * (len(args) - 1)
            program = torch.onnx.export(wrapper, args, dynamo=True, opset_version=max(opset, DYNAMO_OPSET),
                                        input_names=input_names, output_names=output_names,
                                        dynamic_shapes=tuple(shapes), verbose=False)
            model = program.model_proto
    try:
        return settle_versions(model, ir_version=ir_version, opset=opset), ""
    except ExportError as e:
        if exporter != "dynamo" or opset >= DYNAMO_OPSET:
            raise
        model = settle_versions(model, ir_version=ir_version, opset=DYNAMO_OPSET)
        return model, f"kept at opset {DYNAMO_OPSET}: converting to {opset} failed ({e})"


def export_head(head: nn.Module, features: int, *, ir_version: int, opset: int) -> onnx.ModelProto:
    """A declared head ``(B, features) → (B, O)`` on its own, for the step graph (TorchScript)."""
    with quiet(), torch.no_grad():
        buffer = io.BytesIO()
        torch.onnx.export(head, (torch.zeros(2, features),), buffer, dynamo=False, opset_version=opset,
                          input_names=["features"], output_names=["y"], dynamic_axes={"features": {0: "batch"}})
    return settle_versions(onnx.load_from_string(buffer.getvalue()), ir_version=ir_version, opset=opset)


def attach_head(step: onnx.ModelProto, head: onnx.ModelProto, outputs: list[str]) -> onnx.ModelProto:
    """Feed the step graph's ``features`` output into the head graph; keep ``y`` and the new state."""
    head = onnx.compose.add_prefix(head, "head/", rename_outputs=False)
    merged = onnx.compose.merge_models(step, head, io_map=[("features", "head/features")], outputs=outputs)
    del merged.metadata_props[:]
    merged.metadata_props.extend(step.metadata_props)
    onnx.checker.check_model(merged)
    return merged
