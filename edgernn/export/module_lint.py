"""Look at a user's module before exporting it: what it is made of, how it runs, what could go wrong.

``inspect_module`` runs the module (in eval mode) on its example input and a few probes, with
hooks on its recurrent layers, and gathers facts: the layers, whether the input is time-major
or token ids, whether the forward packs sequences or builds its own initial state, whether it
takes another batch size or length, which operators have no ONNX conversion. ``lint`` turns the
facts and the export path edgernn chose into a short list, each item saying what edgernn did.
"""

from __future__ import annotations

import inspect
import os
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence

from edgernn.errors import BadInputError, ExportError
from edgernn.export.module_forward import cell_loops, scripted, second_input
from edgernn.export.module_torch import quiet

RNN_TYPES = (nn.LSTM, nn.GRU)
RECURRENT_TYPES = (nn.LSTM, nn.GRU, nn.RNN, nn.LSTMCell, nn.GRUCell, nn.RNNCell)
PASSIVE_TYPES = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.AlphaDropout, nn.Identity)


@dataclass(frozen=True)
class LintItem:
    code: str  # proj_size, packed_sequence, baked_batch, gru_gates, train_mode, unsupported, size, ...
    level: str  # "info" | "warning"
    found: str  # what is in the module
    action: str  # what edgernn did about it

    def line(self) -> str:
        return f"{self.found}: {self.action}"

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass
class RnnCall:
    """What a hook saw when the module called one of its recurrent layers."""

    name: str
    packed: bool
    initial_state: str  # "none" | "zeros" | "values"
    state_batch: int | None


@dataclass
class ModuleFacts:
    name: str  # "my_model.Classifier"
    module: nn.Module
    was_training: bool
    leaves: list[tuple[str, nn.Module]]
    calls: list[RnnCall]
    example: tuple[torch.Tensor, ...]  # (x,) or (x, lengths), in the module's own layout
    takes_ids: bool
    takes_lengths: bool
    time_major: bool
    vocab: int  # ids are drawn below this
    batch_flexible: bool = True
    time_flexible: bool = True
    unrolled: bool = False  # a cell (LSTMCell, ...) called in a Python loop: traced for one length
    unconvertible: list[str] = field(default_factory=list)  # "aten::histc at model.py:12 (forward)"
    loops: dict[str, tuple[int, bool]] = field(default_factory=dict)  # cell → (calls, follows the input length)

    @property
    def recurrent(self) -> list[tuple[str, nn.Module]]:
        return [(n, m) for n, m in self.leaves if isinstance(m, RECURRENT_TYPES)]

    @property
    def packed(self) -> bool:
        return any(c.packed for c in self.calls)

    @property
    def batch(self) -> int:
        return int(self.example[0].shape[1 if self.time_major else 0])

    @property
    def length(self) -> int:
        return int(self.example[0].shape[0 if self.time_major else 1])

    def parameter_bytes(self) -> int:
        return sum(p.numel() * 4 for p in self.module.parameters())


# --------------------------------------------------------------------------------------------
# Inputs: the example, and probes of any batch size and length in the same layout
# --------------------------------------------------------------------------------------------


def _required_inputs(module: nn.Module) -> list[str]:
    try:
        params = inspect.signature(module.forward).parameters.values()
    except (TypeError, ValueError):
        return ["x"]
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return [p.name for p in params if p.kind in kinds and p.default is inspect.Parameter.empty]


def example_inputs(module: nn.Module, example_input, lengths: bool | None = None) -> tuple[torch.Tensor, ...]:
    """``example_input`` (a tensor or array, or ``(x, lengths)``) as a tuple of tensors for ``forward``."""
    items = list(example_input) if isinstance(example_input, (tuple, list)) else [example_input]
    tensors = [torch.as_tensor(np.asarray(v)) if not isinstance(v, torch.Tensor) else v for v in items]
    required = _required_inputs(module)
    if len(required) > 2:
        raise BadInputError(f"{type(module).__name__}.forward takes {len(required)} inputs ({', '.join(required)}); "
                            "edgernn passes the input and, for padded batches, the lengths")
    if len(tensors) > 2:
        raise BadInputError(f"expected the example input x, or (x, lengths), got {len(tensors)} tensors")
    wants_lengths = second_input(module, required, tensors, lengths)
    if len(tensors) == 2 and not wants_lengths:
        raise BadInputError(f"expected the example input x, or (x, lengths), got {len(tensors)} tensors")
    x = tensors[0]
    if x.ndim not in (2, 3):
        raise BadInputError(f"expected an example input of shape (batch, time, features) or (batch, time) token ids, "
                            f"got shape {tuple(x.shape)}")
    if wants_lengths and len(tensors) == 1:
        batch_axis = 1 if _time_major(module) else 0
        tensors.append(torch.full((x.shape[batch_axis],), x.shape[1 - batch_axis], dtype=torch.int64))
    if wants_lengths:
        tensors[1] = tensors[1].to(torch.int64)
    return tuple(tensors)


def _time_major(module: nn.Module) -> bool:
    rnns = [m for m in module.modules() if isinstance(m, (nn.LSTM, nn.GRU, nn.RNN))]
    return bool(rnns) and not any(m.batch_first for m in rnns)


def probe_inputs(facts: ModuleFacts, batch: int, length: int, seed: int) -> tuple[torch.Tensor, ...]:
    """Fresh inputs of this batch size and length, in the module's layout; lengths sorted, the first full."""
    rng = np.random.default_rng([seed, batch, length])
    shape = (length, batch) if facts.time_major else (batch, length)
    x0 = facts.example[0]
    if facts.takes_ids:
        x = torch.from_numpy(rng.integers(0, facts.vocab, size=shape + tuple(x0.shape[2:]))).to(x0.dtype)
    else:
        x = torch.from_numpy(rng.standard_normal(shape + tuple(x0.shape[2:])).astype(np.float32)).to(x0.dtype)
    if not facts.takes_lengths:
        return (x,)
    lengths = np.sort(rng.integers(1, length + 1, size=batch))[::-1].copy()
    lengths[0] = length
    return x, torch.from_numpy(lengths.astype(np.int64))


def batch_first_numpy(facts: ModuleFacts, inputs: tuple[torch.Tensor, ...]) -> dict[str, np.ndarray]:
    """Module-layout inputs → the bundle's feeds: ``x`` batch first, ``lengths``."""
    x = inputs[0].transpose(0, 1) if facts.time_major else inputs[0]
    feeds = {"x": np.ascontiguousarray(x.numpy())}
    if facts.takes_lengths:
        feeds["lengths"] = inputs[1].numpy().astype(np.int64)
    return feeds


# --------------------------------------------------------------------------------------------
# Inspection
# --------------------------------------------------------------------------------------------


def _call_module(module: nn.Module, inputs):
    with torch.no_grad():
        return module(*inputs)


def _hooked_run(module: nn.Module, names: dict[nn.Module, str], inputs) -> tuple[Any, list[RnnCall]]:
    calls: list[RnnCall] = []

    def pre_hook(m, args, kwargs):
        x = args[0] if args else kwargs.get("input")
        hx = args[1] if len(args) > 1 else kwargs.get("hx")
        h0 = hx[0] if isinstance(hx, tuple) else hx
        state = "none" if h0 is None else ("zeros" if all(float(t.abs().max()) == 0 for t in
                                                         (hx if isinstance(hx, tuple) else (hx,))) else "values")
        batch = int(h0.shape[1]) if h0 is not None and h0.ndim == 3 else None
        calls.append(RnnCall(names[m], isinstance(x, PackedSequence), state, batch))

    handles = [m.register_forward_pre_hook(pre_hook, with_kwargs=True) for m in names]
    try:
        return _call_module(module, inputs), calls
    finally:
        for h in handles:
            h.remove()


def _runs(module: nn.Module, inputs) -> bool:
    try:
        _call_module(module, inputs)
        return True
    except Exception:  # the module's own error on a shape it does not take
        return False


def unconvertible_ops(module: nn.Module, inputs, opset: int) -> list[str]:
    """Operators of the traced forward with no ONNX conversion, each with where it is written."""
    try:
        with quiet():
            graph, ops = torch.onnx.utils.unconvertible_ops(module, inputs, opset_version=opset)
    except Exception:  # tracing itself failed (e.g. packed sequences): the export will say more
        return []
    found = []
    for op in ops:
        where = ""
        for node in graph.nodes():
            if node.kind() == op:
                m = re.match(r"(.+)\((\d+)\): (\w+)", node.sourceRange().splitlines()[0] if node.sourceRange() else "")
                where = f" at {os.path.basename(m.group(1))}:{m.group(2)} ({m.group(3)})" if m else ""
                break
        found.append(f"{op}{where}")
    return found


def inspect_module(module: nn.Module, example_input, *, lengths: bool | None = None, opset: int = 17) -> ModuleFacts:
    """Switch the module to eval mode and find out what it is and how it runs."""
    if not isinstance(module, nn.Module):
        raise BadInputError(f"expected a torch.nn.Module, got {type(module).__name__}")
    scripted(module)
    was_training = module.training
    module.eval()
    leaves = [(n, m) for n, m in module.named_modules() if not list(m.children()) and not isinstance(m, PASSIVE_TYPES)]
    if not isinstance(module, nn.Module) or not any(isinstance(m, RECURRENT_TYPES) for _, m in leaves):
        kinds = ", ".join(sorted({type(m).__name__ for _, m in leaves})) or "no layers"
        raise ExportError(f"{type(module).__name__} has no nn.LSTM or nn.GRU inside (found: {kinds}); "
                          "edgernn exports recurrent models")
    inputs = example_inputs(module, example_input, lengths)
    embeddings = [m for _, m in leaves if isinstance(m, nn.Embedding)]
    takes_ids = not inputs[0].is_floating_point()
    vocab = min((m.num_embeddings for m in embeddings), default=int(inputs[0].max()) + 1 if takes_ids else 0)
    facts = ModuleFacts(
        name=f"{type(module).__module__}.{type(module).__qualname__}", module=module, was_training=was_training,
        leaves=leaves, calls=[], example=inputs, takes_ids=takes_ids, takes_lengths=len(inputs) == 2,
        time_major=_time_major(module), vocab=max(vocab, 1),
    )
    names = {m: n for n, m in leaves if isinstance(m, RECURRENT_TYPES)}
    try:
        _, facts.calls = _hooked_run(module, names, inputs)
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        shape = tuple(inputs[0].shape)
        raise BadInputError(f"{type(module).__name__} does not run on an example input of shape {shape} "
                            f"({type(e).__name__}: {first}); pass the shape its forward takes") from None
    B, T = facts.batch, facts.length
    facts.batch_flexible = _runs(module, probe_inputs(facts, B + 2, T, seed=1))
    try:  # each cell's calls at another length: a loop over the input's steps, or a fixed count
        _, longer = _hooked_run(module, names, probe_inputs(facts, B, T + 3, seed=2))
        runs_longer = True
    except Exception:  # the module's own error on a length it does not take
        longer, runs_longer = None, False
    facts.loops = cell_loops({n: m for m, n in names.items()}, Counter(c.name for c in facts.calls),
                             None if longer is None else Counter(c.name for c in longer), T, T + 3)
    facts.unrolled = any(follows for _, follows in facts.loops.values())
    facts.time_flexible = not facts.unrolled and runs_longer
    if not facts.packed:
        facts.unconvertible = unconvertible_ops(module, inputs, opset)
    return facts


# --------------------------------------------------------------------------------------------
# The lint
# --------------------------------------------------------------------------------------------


def _kib(n: int) -> str:
    return f"{n / 1024:.0f} KiB" if n < 10 * 1024 * 1024 else f"{n / 1024 / 1024:.1f} MiB"


def lint(facts: ModuleFacts, *, path: str, streams: bool, reason: str = "") -> list[LintItem]:
    """The hazards of this module and what edgernn did about each, for the path it took:
    ``recognised`` (edgernn's own writers) or ``torch.onnx.export``."""
    items: list[LintItem] = []
    own = path == "recognised"
    add = lambda code, level, found, action: items.append(LintItem(code, level, found, action))  # noqa: E731
    if facts.was_training:
        dropout = [n for n, m in facts.module.named_modules()
                   if (isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0)
                   or (isinstance(m, RNN_TYPES) and m.dropout > 0)]
        found = f"module was in training mode{' with dropout on (' + ', '.join(dropout) + ')' if dropout else ''}"
        add("train_mode", "warning" if dropout else "info", found,
            "exported in eval mode (module.eval()): dropout off, as at inference")
    for name, m in facts.recurrent:
        if isinstance(m, nn.LSTM) and m.proj_size:
            add("proj_size", "warning", f"LSTM '{name}' has proj_size={m.proj_size}, which torch.onnx.export rejects",
                "edgernn writes it itself (a Scan of elementary ops with the projection), checked against the module")
        if isinstance(m, (nn.GRU, nn.GRUCell)):
            add("gru_gates", "info", f"GRU '{name}': PyTorch applies the reset gate after the hidden matmul",
                ("edgernn writes ONNX GRU with linear_before_reset=1 and a step graph computing r * (W_hn h + b_hn)"
                 if own else "torch.onnx.export writes ONNX GRU with linear_before_reset=1")
                + "; a runtime with only the other convention gives other numbers; parity checks it")
        if isinstance(m, (nn.LSTMCell, nn.GRUCell, nn.RNNCell)):
            calls, follows = facts.loops.get(name, (0, True))
            if follows:
                add("cell_loop", "warning", f"{type(m).__name__} '{name}' is called once per input step "
                    f"({calls} calls for {facts.length} steps) in a Python loop",
                    f"the loop is unrolled for the example's {facts.length} steps: the bundle takes windows of "
                    f"exactly {facts.length} steps")
            else:
                add("cell_loop", "info", f"{type(m).__name__} '{name}' is called {calls} times per forward, "
                    "whatever the input's length", f"unrolled to {calls} steps in the graph; the window length "
                    "stays free (checked at other lengths)")
        if isinstance(m, nn.RNN):
            add("vanilla_rnn", "info", f"nn.RNN '{name}' (Elman)", "exported as the ONNX RNN op by torch.onnx.export")
        if getattr(m, "bidirectional", False):
            add("bidirectional", "info", f"'{name}' is bidirectional", "window graph only: a backward direction cannot stream")
    if facts.packed:
        add("packed_sequence", "warning", "forward packs its input (pack_padded_sequence)",
            "neither torch exporter handles packed sequences; edgernn passes the lengths to the LSTM/GRU op "
            "(sequence_lens): the bundle takes a `lengths` input, padding does not change any result"
            if own else "not exportable outside edgernn's recognised structure (RNN + Linear)")
    elif facts.takes_lengths:
        add("lengths", "info", "forward takes lengths", "the bundle takes a `lengths` input")
    cells = {n for n, m in facts.recurrent if not isinstance(m, (nn.LSTM, nn.GRU, nn.RNN))}
    for call in {c.name: c for c in facts.calls if c.name not in cells}.values():  # one item per layer
        if call.initial_state == "zeros" and not facts.batch_flexible:
            add("baked_batch", "warning",
                f"initial state of '{call.name}' is built with batch size {call.state_batch}: the module "
                f"runs only on batches of {facts.batch}",
                "the exported graph starts from zeros of any batch size" if own else
                f"exported with the batch fixed at {facts.batch}")
            break
        if call.initial_state == "values":
            add("initial_state", "info", f"'{call.name}' starts from a non-zero initial state",
                "kept as the module computes it (torch.onnx.export)")
    if not facts.batch_flexible and not any(i.code == "baked_batch" for i in items):
        add("fixed_batch", "warning", f"the module runs only on batches of {facts.batch}",
            f"exported with the batch fixed at {facts.batch}")
    if not facts.time_flexible and not facts.unrolled:
        add("fixed_time", "warning", f"the module runs only on sequences of {facts.length} steps",
            f"exported with the length fixed at {facts.length}")
    if facts.time_major:
        add("time_major", "info", "the RNNs take (time, batch, ...) input (batch_first=False)",
            "the bundle takes (batch, time, ...): edgernn transposes")
    if facts.takes_ids:
        add("token_ids", "info", "the input is integer token ids",
            f"the bundle takes int64 ids (0 ≤ id < {facts.vocab}); the runtime does not normalise them")
    for op in facts.unconvertible:
        add("unsupported_op", "warning", f"{op} has no ONNX conversion in torch.onnx (TorchScript)",
            "trying torch.export (dynamo), which may convert it")
    if not own:
        other = sorted({type(m).__name__ for _, m in facts.leaves
                        if not isinstance(m, (*RNN_TYPES, nn.Linear, nn.Embedding))})
        add("unsupported_layers", "info",
            reason or f"layers beyond an RNN + Linear: {', '.join(other)}",
            "exported through torch.onnx.export; parity is checked against the module"
            + ("" if streams else "; no step graph (declare split=(backbone, head) for one)"))
    size = facts.parameter_bytes() + 3 * 1024  # fp32 weights and about 3 KiB of graph
    add("size", "info", f"{sum(p.numel() for p in facts.module.parameters()):,} parameters",
        f"expect about {_kib(size)} per fp32 model file" + (" (window and step graph)" if streams else ""))
    return items
