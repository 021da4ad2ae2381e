"""Parity of a bundle exported from a module: the module itself (eval mode, torch) is the reference.

Window graphs run on probes of several batch sizes and lengths (padded, with random lengths, when
the module takes them) and every output is compared with the module's. Step graphs are stepped
through each probe from zero state: their ``y`` at the last step (or at every step, for a head on
every step) is compared with the module's. Where the RNN part was recognised, the NumPy reference
(``edgernn.reference``, float64) is a second, independent reference. Figures are collected in
``edgernn.parity``'s reports; the caller fails once, with all of them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch

from edgernn.export.module_lint import ModuleFacts, batch_first_numpy, probe_inputs
from edgernn.parity import TOLERANCES, Comparison, VariantReport, compare_figures, step_through
from edgernn.reference import rnn_forward
from edgernn.spec import ModelSpec


def module_outputs(facts: ModuleFacts, inputs, *, output_time_major: bool) -> list[np.ndarray]:
    """The module's outputs, flattened, batch first."""
    with torch.no_grad():
        out = facts.module(*inputs)
    flat: list[torch.Tensor] = []
    stack = [out]
    while stack:
        item = stack.pop(0)
        if isinstance(item, (tuple, list)):
            stack[:0] = list(item)
        elif isinstance(item, torch.Tensor):
            flat.append(item)
    first = flat[0].transpose(0, 1) if output_time_major else flat[0]
    return [first.numpy()] + [t.numpy() for t in flat[1:]]


def numpy_reference(spec: ModelSpec, weights: Mapping[str, np.ndarray], feeds: Mapping[str, np.ndarray]) -> np.ndarray:
    """``y`` from ``edgernn.reference`` for a recognised spec (not projected): each sequence alone,
    cut to its length, as packing means."""
    x = np.asarray(weights["emb.weight"], np.float64)[feeds["x"]] if spec.vocab_size else feeds["x"]
    B, T = x.shape[:2]
    lengths = feeds.get("lengths", np.full(B, T))
    W = np.asarray(weights["head.weight"], np.float64)
    b = np.asarray(weights.get("head.bias", np.zeros(W.shape[0])), np.float64)
    rnn_weights = {k: v for k, v in weights.items() if k.startswith("rnn.")}
    ys = []
    for i in range(B):
        r = rnn_forward(spec.cell, rnn_weights, x[i : i + 1, : lengths[i]], num_layers=spec.num_layers,
                        bidirectional=spec.bidirectional)
        if spec.head_input == "every_step":
            out = np.zeros((1, T, r.output.shape[2]))
            out[:, : lengths[i]] = r.output  # padded steps: zeros, as pad_packed_sequence gives
            ys.append(out @ W.T + b)
        elif spec.head_input == "final_state" and spec.bidirectional:
            ys.append(np.concatenate([r.h_n[-2], r.h_n[-1]], axis=-1) @ W.T + b)
        else:
            ys.append(r.output[:, -1] @ W.T + b)
    return np.concatenate(ys)


def probe_grid(facts: ModuleFacts, recognised: bool) -> list[tuple[int, int]]:
    B, T = facts.batch, facts.length
    batches = sorted({1, 3, B}) if facts.batch_flexible else [B]
    lengths = sorted({1, T, 2 * T} if recognised else {max(2, T // 2), T, 2 * T}) if facts.time_flexible else [T]
    return [(b, t) for b in batches for t in lengths]


def bundle_parity(
    facts: ModuleFacts,
    spec: ModelSpec,
    windows: Mapping[str, tuple[str, Callable]],
    steps: Mapping[str, tuple[str, Callable]],
    *,
    output_time_major: bool = False,
    weights: Mapping[str, np.ndarray] | None = None,
    grid: Sequence[tuple[int, int]] = (),
    seed: int = 0,
) -> list[VariantReport]:
    """``windows``/``steps``: variant name → (precision, run function taking the bundle's feeds).

    ``weights`` (recognised, not projected): also compare with the NumPy reference.
    """
    reports = {name: VariantReport(name, prec, TOLERANCES[prec]) for name, (prec, _) in {**windows, **steps}.items()}

    def record(name: str, against: str, output: str, got, want, batch: int, length: int, mode: str) -> None:
        figures = compare_figures(got, want, reports[name].tolerance)
        reports[name].comparisons.append(Comparison(name, against, output, batch, length, *figures, mode=mode))

    every = spec.head_input == "every_step"
    for batch, length in grid or probe_grid(facts, weights is not None):
        inputs = probe_inputs(facts, batch, length, seed)
        feeds = batch_first_numpy(facts, inputs)
        wants = module_outputs(facts, inputs, output_time_major=output_time_major)
        reference = numpy_reference(spec, weights, feeds) if weights is not None and not spec.proj_size else None
        for name, (_, run) in windows.items():
            got = run(feeds)
            names = ["y"] + [f"y_{k}" for k in range(1, len(wants))]
            for output, want in zip(names, wants):
                record(name, "module", output, got.get(output, np.empty(0)), want, batch, length, "window")
            if reference is not None:
                record(name, "numpy", "y", got["y"], reference, batch, length, "window")
        if not steps:
            continue
        full = {"x": feeds["x"]}  # streams have no padding: each stream's window is all of it
        if facts.takes_lengths:
            full_inputs = (inputs[0], torch.full_like(inputs[1], length))
            wants = module_outputs(facts, full_inputs, output_time_major=output_time_major)
            reference = numpy_reference(spec, weights, full) if reference is not None else None
        for name, (_, step) in steps.items():
            ys, _ = step_through(step, spec, full["x"])  # (B, T, O)
            got = ys if every else ys[:, -1]
            record(name, "module", "y_every_step" if every else "y_last_step", got, wants[0], batch, length, "stream")
            if reference is not None:
                record(name, "numpy", "y_every_step" if every else "y_last_step", got, reference, batch, length, "stream")
    return list(reports.values())
