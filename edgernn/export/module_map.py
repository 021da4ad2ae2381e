"""Recognise a module edgernn can write itself: (Embedding →) LSTM/GRU → Linear.

Structure is read off the module's layers; what ``forward`` does with them is measured, not parsed:
each way a head can read the RNN (the last step, the final states of both directions, every
step) is computed from the module's own layers and compared with the module's output on a few
probes. The one that matches (to float32 rounding) becomes the ``ModelSpec``; the weights are
renamed to ``emb.weight``, ``rnn.*`` and ``head.*``. A module that matches none goes to
``torch.onnx.export``, and the reason is kept for the lint.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from edgernn.export.module_forward import extra_ops
from edgernn.export.module_lint import RNN_TYPES, ModuleFacts, probe_inputs
from edgernn.spec import ModelSpec

MATCH_ATOL, MATCH_RTOL = 1e-5, 1e-4  # same float32 ops in the same order: differences are rounding only


@dataclass
class Recognised:
    spec: ModelSpec
    weights: dict[str, np.ndarray]
    layers: dict[str, str]  # role → the module's layer name: {"embedding": …, "rnn": …, "head": …}
    max_abs: float  # candidate vs the module on the probes


def _structure(facts: ModuleFacts) -> tuple[dict[str, nn.Module] | None, dict[str, str], str]:
    """The layers playing embedding, rnn and head, or None and why not."""
    by_kind: dict[str, list[tuple[str, nn.Module]]] = {"rnn": [], "head": [], "embedding": [], "other": []}
    for name, m in facts.leaves:
        kind = "rnn" if isinstance(m, RNN_TYPES) else "head" if isinstance(m, nn.Linear) else \
            "embedding" if isinstance(m, nn.Embedding) else "other"
        by_kind[kind].append((name, m))
    if by_kind["other"]:
        kinds = ", ".join(dict.fromkeys(f"{type(m).__name__} '{n}'" for n, m in by_kind["other"]))
        return None, {}, f"layers beyond an RNN + Linear: {kinds}"
    if len(by_kind["rnn"]) != 1:
        return None, {}, f"{len(by_kind['rnn'])} separate recurrent layers ({', '.join(n for n, _ in by_kind['rnn'])})"
    if len(by_kind["head"]) != 1 or len(by_kind["embedding"]) > 1:
        return None, {}, (f"{len(by_kind['head'])} Linear and {len(by_kind['embedding'])} Embedding layers "
                          "around the RNN (recognised: one Linear head, at most one Embedding in front)")
    (rnn_name, rnn), (head_name, head) = by_kind["rnn"][0], by_kind["head"][0]
    emb_name, emb = by_kind["embedding"][0] if by_kind["embedding"] else (None, None)
    state_size = (getattr(rnn, "proj_size", 0) or rnn.hidden_size) * (2 if rnn.bidirectional else 1)
    if head.in_features != state_size:
        return None, {}, f"Linear '{head_name}' takes {head.in_features} features, the RNN gives {state_size}"
    if emb is not None and (emb.max_norm is not None or emb.embedding_dim != rnn.input_size or not facts.takes_ids):
        return None, {}, f"Embedding '{emb_name}' does not feed the RNN as a plain lookup"
    if facts.takes_ids and emb is None:
        return None, {}, "integer input without an Embedding"
    if any(c.initial_state == "values" for c in facts.calls):
        return None, {}, f"RNN '{rnn_name}' starts from a non-zero initial state"
    layers = {"rnn": rnn, "head": head, **({"embedding": emb} if emb is not None else {})}
    names = {"rnn": rnn_name, "head": head_name, **({"embedding": emb_name} if emb is not None else {})}
    return layers, names, ""


def _candidate(facts: ModuleFacts, layers: dict[str, nn.Module], inputs, head_input: str) -> torch.Tensor:
    """The module's output if its forward were ``head(<head_input> of rnn(embedding(x)))``."""
    rnn, head = layers["rnn"], layers["head"]
    x = inputs[0]
    x = layers["embedding"](x) if "embedding" in layers else x
    T = x.shape[0 if facts.time_major else 1]
    if facts.takes_lengths:
        packed = pack_padded_sequence(x, inputs[1], batch_first=rnn.batch_first, enforce_sorted=False)
        out, state = rnn(packed)
        out, _ = pad_packed_sequence(out, batch_first=rnn.batch_first, total_length=T)
    else:
        out, state = rnn(x)
    out = out if rnn.batch_first else out.transpose(0, 1)  # (B, T, D·S)
    h_n = state[0] if isinstance(state, tuple) else state  # (L·D, B, S)
    if head_input == "every_step":
        y = head(out)  # (B, T, O)
        return y if rnn.batch_first else y.transpose(0, 1)
    if head_input == "final_state":
        return head(torch.cat([h_n[-2], h_n[-1]], dim=1))
    if facts.takes_lengths:
        return head(out[torch.arange(out.shape[0]), inputs[1] - 1])
    return head(out[:, -1])


def _max_abs_if_close(got, want) -> float | None:
    if not isinstance(got, torch.Tensor) or got.shape != want.shape:
        return None
    if not torch.allclose(got, want, atol=MATCH_ATOL, rtol=MATCH_RTOL):
        return None
    return float((got - want).abs().max()) if got.numel() else 0.0


def recognise(facts: ModuleFacts, *, head: str | None = None, labels=(), task: str | None = None
              ) -> tuple[Recognised | None, str]:
    """The module as a ModelSpec + weights, or None and the reason it is not one."""
    layers, names, reason = _structure(facts)
    if layers is None:
        return None, reason
    rnn = layers["rnn"]
    taps = ["last_step", "final_state", "every_step"] if rnn.bidirectional else ["last_step", "every_step"]
    B, T = facts.batch, facts.length
    probes = [facts.example, probe_inputs(facts, B, T, seed=11)]
    if facts.batch_flexible and facts.time_flexible:
        probes.append(probe_inputs(facts, B + 2, T + 3, seed=12))
    with torch.no_grad():
        outputs = [facts.module(*p) for p in probes]
        if not all(isinstance(y, torch.Tensor) for y in outputs):
            return None, "forward returns more than one tensor"
        for tap in taps:
            try:
                errors = [_max_abs_if_close(_candidate(facts, layers, p, tap), y) for p, y in zip(probes, outputs)]
            except Exception:  # the layers do not even chain this way (e.g. features computed in forward)
                break
            if all(e is not None for e in errors):
                return _mapped(facts, layers, names, tap, max(errors), head, labels, task), ""
    where = f"the RNN's {' or '.join(t.replace('_', ' ') for t in taps)}"
    extra = [] if facts.packed else extra_ops(facts.module, facts.example)  # what forward does besides its layers
    if extra:
        return None, f"forward applies {', '.join(extra)} besides Linear on {where}"
    return None, f"forward does something besides Linear on {where} (measured on probes)"


def _mapped(facts, layers, names, tap, max_abs, head, labels, task) -> Recognised:
    rnn, linear, emb = layers["rnn"], layers["head"], layers.get("embedding")
    as_np = lambda t: t.detach().cpu().numpy().astype(np.float32)  # noqa: E731
    weights = {f"rnn.{k}": as_np(v) for k, v in rnn.state_dict().items()}
    weights["head.weight"] = as_np(linear.weight)
    weights["head.bias"] = as_np(linear.bias) if linear.bias is not None else np.zeros(linear.out_features, np.float32)
    if emb is not None:
        weights["emb.weight"] = as_np(emb.weight)
    spec = ModelSpec(
        cell="lstm" if isinstance(rnn, nn.LSTM) else "gru", input_size=rnn.input_size, hidden_size=rnn.hidden_size,
        num_layers=rnn.num_layers, bidirectional=rnn.bidirectional, dropout=float(rnn.dropout),
        head=head, output_size=linear.out_features, labels=tuple(labels), task=task,
        proj_size=getattr(rnn, "proj_size", 0), head_input=tap, vocab_size=emb.num_embeddings if emb else 0,
        module=facts.name,
    )
    return Recognised(spec, weights, names, max_abs)
