"""What a module's ``forward`` is, read before exporting it: compiled or Python, what its second
input means, how often it calls its cells, and which operators it applies beyond its layers.

- ``scripted``: a ``torch.jit.script``/``trace`` module hides its layers (they are all
  ``RecursiveScriptModule``), so edgernn cannot hook, recognise or re-trace them: refused, naming them.
- ``second_input``: ``forward(x, lengths)`` and ``forward(x, hidden)`` look alike by count; the
  parameter's name and annotation and the example's dtype tell them apart.
- ``cell_loops``: an ``LSTMCell``/``GRUCell`` called once per input step is unrolled for the
  example's length; one called a fixed number of times (a 5-step decoder) is not tied to it.
- ``extra_ops``: the traced forward's operators beyond the lookups, the RNN and the Linear, each
  with its source line: what stops recognition (a softmax on the output, say).
"""

from __future__ import annotations

import inspect
import os
import re
from collections import Counter
from pathlib import Path

import torch
from torch import nn

from edgernn.errors import BadInputError, ExportError
from edgernn.export.module_torch import quiet

LENGTH_NAMES = re.compile(r"len|lens|lengths|seq_len|sizes", re.IGNORECASE)
STATE_NAMES = re.compile(r"hid|state|^h|^hx|^h0|^c0|memory|carry", re.IGNORECASE)
# What a recognised (Embedding →) RNN → Linear forward may do besides its layers: indexing, layout, packing.
PLUMBING = {
    "aten::lstm", "aten::gru", "aten::linear", "aten::embedding", "aten::select", "aten::slice", "aten::index",
    "aten::transpose", "aten::t", "aten::cat", "aten::stack", "aten::contiguous", "aten::dropout",
    "aten::feature_dropout", "aten::size", "aten::zeros", "aten::zeros_like", "aten::to", "aten::squeeze",
    "aten::unsqueeze", "aten::permute", "aten::view", "aten::reshape", "aten::flatten",
    "aten::_pack_padded_sequence", "aten::_pad_packed_sequence", "aten::detach", "aten::cpu", "aten::lift_fresh",
    "aten::copy_", "aten::arange", "aten::Int", "aten::ScalarImplicit", "aten::alias", "aten::clone",
    "aten::sub", "aten::expand", "aten::expand_as", "aten::full", "aten::ones", "aten::new_zeros", "aten::sort",
    "aten::index_select", "aten::gather", "aten::type_as", "aten::matmul", "aten::addmm", "aten::mm",
}
TORCH_DIR = str(Path(torch.__file__).parent)


def scripted(module: nn.Module) -> None:
    """Refuse a TorchScript module with the true reason."""
    if not isinstance(module, torch.jit.ScriptModule):
        return
    how = "torch.jit.trace" if isinstance(module, torch.jit.TopLevelTracedModule) else "torch.jit.script"
    name = getattr(module, "original_name", type(module).__name__)
    layers = ", ".join(f"'{n}' ({getattr(m, 'original_name', '?')})" for n, m in module.named_modules() if n)
    raise ExportError(f"{name} is a TorchScript module ({how}): its layers ({layers or 'none'}) are compiled, so "
                      "edgernn cannot inspect, recognise or re-trace them; pass the Python nn.Module (before "
                      f"{how}, e.g. the class with its state_dict loaded)")


def second_input(module: nn.Module, required: list[str], tensors: list[torch.Tensor], lengths: bool | None) -> bool:
    """Whether the forward's second input is each sequence's length (True), or there is none (False);
    anything else (an initial state) is refused, saying why."""
    if lengths is not None:
        return lengths
    cls = type(module).__name__
    if len(tensors) == 2:
        second = tensors[1]
        if second.is_floating_point() or second.ndim != 1:
            raise BadInputError(
                f"the second example input of {cls} is a {'float' if second.is_floating_point() else 'integer'} "
                f"tensor of shape {tuple(second.shape)}: edgernn reads a second input as lengths, integers of shape "
                "(batch,); an initial state is not an input edgernn passes (give it a default of None in forward)")
        return True
    if len(required) < 2:
        return False
    name = required[1]
    try:
        annotation = str(inspect.signature(module.forward).parameters[name].annotation)
    except (TypeError, ValueError, KeyError):
        annotation = ""
    if LENGTH_NAMES.search(name) or "Long" in annotation or "int" in annotation.lower():
        return True
    looks = "an initial state" if STATE_NAMES.search(name) or "tuple" in annotation.lower() else "not lengths"
    raise BadInputError(
        f"{cls}.forward({required[0]}, {name}) needs '{name}', which looks like {looks}: edgernn passes the input "
        f"and, for padded batches, integer lengths; give '{name}' a default ({name}=None: the RNN starts from "
        "zeros) or, if it is lengths, pass the example as (x, lengths)")


def cell_loops(names: dict[str, nn.Module], counts_example: Counter, counts_longer: Counter | None,
               length: int, longer: int) -> dict[str, tuple[int, bool]]:
    """Cell name → (calls on the example, whether the count follows the input's length)."""
    out = {}
    for name, m in names.items():
        if not isinstance(m, (nn.LSTMCell, nn.GRUCell, nn.RNNCell)):
            continue
        n = counts_example.get(name, 0)
        follows = counts_longer is None or counts_longer.get(name, 0) != n
        out[name] = (n, follows)
    return out


def _where(node) -> str:
    """``file.py:12 (forward)`` of the user's code that made this node ("" when unknown)."""
    lines = (node.sourceRange() or "").splitlines()
    for line in lines:
        m = re.match(r"(.+)\((\d+)\): (\w+)", line.strip())
        if m and not m.group(1).startswith(TORCH_DIR):
            return f" at {os.path.basename(m.group(1))}:{m.group(2)} ({m.group(3)})"
    return ""


def extra_ops(module: nn.Module, inputs) -> list[str]:
    """Operators of the traced forward beyond lookups, RNNs, Linear and indexing: ``aten::softmax at m.py:9 (forward)``."""
    try:
        with quiet(), torch.no_grad():
            traced = torch.jit.trace(module, tuple(inputs), check_trace=False, strict=False)
        graph = traced.inlined_graph
    except Exception:  # tracing failed: the exporters will say why
        return []
    found: dict[str, str] = {}
    for node in graph.nodes():
        kind = node.kind()
        if not kind.startswith("aten::") or kind in PLUMBING or kind in found:
            continue
        found[kind] = _where(node)
    return [f"{k}{w}" for k, w in found.items()]
