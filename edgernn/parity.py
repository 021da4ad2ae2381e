"""Numerical parity: every variant of a bundle against the NumPy reference (and PyTorch).

The same inputs go through each variant, through ``edgernn.reference`` (float64) and, when a
checkpoint is given, through PyTorch. Every output of every case is compared and recorded; nothing
stops at the first failure: the report holds every figure, and the caller fails once.

Which probes decide: given the model's own data (``data_windows``: normalised training windows at
their real lengths), those decide pass/fail, and the seeded N(0, 1) probes at lengths 1, T and 3T
are reported as drift (``decides=False``): on long random inputs recurrent state can drift
chaotically, which says nothing about what the model will see. Without data, the random probes
decide. Given a float reference of the same model in float32 (``floor_fn``: PyTorch), a float32
variant's comparison is never stricter than PyTorch's own distance from the float64 reference on
the same input (``allowed`` records that floor).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from edgernn.reference import model_forward
from edgernn.spec import ModelSpec


@dataclass(frozen=True)
class Tolerance:
    """When an output is close enough to its reference.

    ``scale="element"``: every element must satisfy ``|got - want| <= atol + rtol * |want|``
    (numpy.allclose) — right for float kernels, whose error is relative to each value.
    ``scale="range"``: ``max |got - want| <= atol + rtol * max |want|`` over the tensor — right
    for quantized variants, whose error is a fraction of the tensor's range (one scale per
    tensor), so a logit near 0 in a tensor of logits near 10 carries the error of the 10s.
    """

    atol: float
    rtol: float
    why: str = ""
    scale: str = "element"


# One place for every precision's tolerance. fp32: float32 kernels (onnxruntime's fused LSTM/GRU,
# MLAS GEMM with FMA) against a float64 reference; measured max abs error ~1e-6 over windows of
# up to 3× the training length on unit-scale inputs, so 1e-4 absolute leaves headroom without
# hiding a wrong gate order (which errs by ~1e-1).
TOLERANCES: dict[str, Tolerance] = {
    "fp32": Tolerance(atol=1e-4, rtol=1e-3, why="float32 kernels vs float64 reference: measured ≤ ~1e-6"),
    # fp16 (weights rounded to float16, float32 compute), measured max abs over windows and streams
    # up to 3× the window, batch 1-16: 5e-5-8e-5 (random 2-layer hidden-64 LSTM/GRU), 1.6e-4-4.2e-4
    # (trained regression/forecast), 2.9e-3-1.7e-2 on classifier logits of magnitude ~10 (covered by rtol).
    "fp16": Tolerance(atol=2e-3, rtol=1e-2, scale="range",
                      why="float16 weights, float32 compute: measured ≤ 4.2e-4 on normalised outputs, "
                      "≤ 1.7e-2 on logits ~10; tolerance is 2e-3 + 1 % of the output's range"),
    # int8, on normalised-unit outputs (regression targets normalised, classifier logits), 2-layer
    # hidden-64 LSTM and GRU, windows and streams up to 3× the window, probe inputs N(0, 1):
    #   dynamic: max abs 2.1e-3-2.6e-3 (random weights), 1.3e-2-2.7e-2 (trained sum/sine),
    #            0.18-0.89 on bands classifier logits (mean 0.03-0.12);
    #   static:  2.6e-3-3.8e-3 (random), 1.7e-2-8.1e-2 (trained sum/sine), 0.18-0.52 on bands logits.
    # A broken variant (two gate blocks swapped, or one recurrent matrix random) errs by 0.3-2 on
    # every output (tests/test_quantize.py proves it fails). The error of a quantized tensor is a
    # fraction of its range, so the bound is 0.1 + 10 % of the output's largest magnitude: 1.1 on
    # logits ~10 (measured ≤ 0.89), ~0.2-0.4 on normalised regression outputs (measured ≤ 8.1e-2).
    # int8-weights: the int8-dynamic budget; its error is the weights' rounding alone (no activation
    # rounding). Measured max abs vs numpy, trained sum LSTM 1×32: int8-weights 2.1e-3 (window) and
    # 3.4e-3 (step), where int8-dynamic (DynamicQuantizeLSTM, 8-bit activations) errs by 2.4e-2 / 1.8e-2.
    "int8-weights": Tolerance(atol=0.1, rtol=0.1, scale="range",
                              why="int8 weights, float32 compute: the weights' rounding only; broken variants "
                              "err by 0.3-2"),
    "int8-dynamic": Tolerance(atol=0.1, rtol=0.1, scale="range",
                              why="int8 weights, run-time activation scales: measured ≤ 2.7e-2 on normalised "
                              "outputs, ≤ 0.89 on logits ~10; broken variants err by 0.3-2"),
    # int8-static also carries calibrated (fixed) activation scales: a trained 1-layer LSTM classifier
    # (bands, hidden 32) errs by 0.47 on a cell state of range 3.4 (14 %) at batch 16 with test
    # accuracy unchanged (0.99), hence 15 % of the range.
    "int8-static": Tolerance(atol=0.1, rtol=0.15, scale="range",
                             why="int8 weights and calibrated activations: measured ≤ 8.1e-2 on normalised "
                             "outputs, ≤ 0.52 on logits ~10, 14 % of an LSTM cell state's range; "
                             "broken variants err by 0.3-2"),
}


@dataclass(frozen=True)
class Comparison:
    variant: str
    against: str  # "numpy" | "torch"
    output: str  # "y" | "h_n" | "c_n"
    batch: int
    length: int
    max_abs: float
    max_rel: float
    mean_abs: float
    passed: bool
    tolerance_used: float = float("nan")  # the largest error as a fraction of what the tolerance allows (≤ 1 passes)
    mode: str = "window"  # "window" | "stream"
    probe: str = "random"  # "data" (the model's own windows) | "random" (seeded N(0, 1))
    decides: bool = True  # False: reported as drift, not counted for pass/fail
    allowed: float | None = None  # the float32 floor: PyTorch's own max abs distance on this input


@dataclass
class VariantReport:
    variant: str
    precision: str
    tolerance: Tolerance
    comparisons: list[Comparison] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        deciding = [c for c in self.comparisons if c.decides]
        return bool(deciding) and all(c.passed for c in deciding)

    def worst_comparison(self) -> Comparison | None:
        """The deciding comparison that used most of its tolerance (the largest error where none was measured)."""
        cs = [c for c in self.comparisons if c.decides] or self.comparisons
        if not cs:
            return None
        return max(cs, key=lambda c: (c.tolerance_used if c.tolerance_used == c.tolerance_used else -1.0, c.max_abs))

    def worst(self, mode: str | None = None, deciding: bool = True) -> dict[str, float]:
        """The largest figures over the comparisons that decide (``deciding=False``: over the drift ones)."""
        cs = [c for c in self.comparisons if (mode is None or c.mode == mode) and c.decides == deciding]
        if not cs:
            return {}
        return {k: max(getattr(c, k) for c in cs) for k in ("max_abs", "max_rel", "mean_abs")}

    def to_dict(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "precision": self.precision,
            "passed": self.passed,
            "tolerance": asdict(self.tolerance),
            "worst": self.worst(),
            "drift": self.worst(deciding=False),
            "comparisons": [asdict(c) for c in self.comparisons],
        }


def compare(got: np.ndarray, want: np.ndarray, tol: Tolerance,
            floor: float | None = None) -> tuple[float, float, float, bool]:
    """``(max abs, max rel, mean abs, passed)`` of ``got`` against ``want`` under ``tol``; a max abs error no
    larger than ``floor`` (the float reference's own distance on this input) passes too."""
    return compare_figures(got, want, tol, floor)[:4]


def compare_figures(got: np.ndarray, want: np.ndarray, tol: Tolerance,
                    floor: float | None = None) -> tuple[float, float, float, bool, float]:
    """``compare`` plus the fraction of the tolerance used: the largest ``error / allowed`` (≤ 1 passes)."""
    got = np.asarray(got, np.float64)
    want = np.asarray(want, np.float64)
    if got.shape != want.shape:
        return float("inf"), float("inf"), float("inf"), False, float("inf")
    diff = np.abs(got - want)
    rel = diff / np.maximum(np.abs(want), 1e-6)
    if tol.scale == "range":
        allowed = tol.atol + tol.rtol * np.abs(want).max(initial=0.0)
        passed = bool(diff.max(initial=0.0) <= allowed)
        used = float(diff.max(initial=0.0) / allowed) if allowed > 0 else float("inf")
    else:
        allowed = tol.atol + tol.rtol * np.abs(want)
        passed = bool(np.all(diff <= allowed))
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(diff == 0, 0.0, diff / allowed)
        used = float(ratio.max(initial=0.0))
    if floor is not None and not passed:
        passed = bool(diff.max(initial=0.0) <= floor)
    return float(diff.max()), float(rel.max()), float(diff.mean()), passed, used


def probe_cases(spec: ModelSpec, batches: Sequence[int], lengths: Sequence[int] | None, seed: int,
                data_windows: Sequence[np.ndarray] | None):
    """(x, probe kind, decides) for every case: the data windows decide when given; random probes then drift."""
    cases = [(x, "data", True) for x in data_windows or ()]
    for batch in batches:
        for length in lengths or default_lengths(spec):
            cases.append((probe_inputs(spec, batch, length, seed), "random", not data_windows))
    return cases


def float_floor(got: Mapping[str, np.ndarray] | None, reference: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Per output, the max abs distance of the float32 reference model's outputs ``got`` (PyTorch on the
    same input) from the float64 ones; none without them."""
    if got is None:
        return {}
    return {k: float(np.abs(np.asarray(got[k], np.float64) - np.asarray(v, np.float64)).max())
            for k, v in reference.items() if v is not None and k in got}


def default_lengths(spec: ModelSpec) -> tuple[int, ...]:
    window = spec.window or 20
    return tuple(sorted({1, window, 3 * window}))


def probe_inputs(spec: ModelSpec, batch: int, length: int, seed: int) -> np.ndarray:
    """Normalised-scale inputs: what the graph sees after the runtime's normalisation."""
    rng = np.random.default_rng([seed, batch, length])
    return rng.standard_normal((batch, length, spec.input_size)).astype(np.float32)


WindowFn = Callable[[np.ndarray], Mapping[str, np.ndarray]]


def window_parity(
    spec: ModelSpec,
    weights: Mapping[str, np.ndarray],
    variants: Mapping[str, tuple[str, WindowFn]],
    *,
    torch_fn: WindowFn | None = None,
    batches: Sequence[int] = (1, 3, 16),
    lengths: Sequence[int] | None = None,
    seed: int = 0,
    data_windows: Sequence[np.ndarray] | None = None,
    floor_fn: WindowFn | None = None,
) -> dict[str, VariantReport]:
    """Compare each window variant (name → (precision, run function)) with the references.

    A run function maps normalised ``x (B, T, F)`` to ``{"y", "h_n"[, "c_n"]}``. See the module
    docstring for ``data_windows`` (which probes decide) and ``floor_fn`` (the float32 floor).
    """
    reports = {name: VariantReport(name, prec, TOLERANCES[prec]) for name, (prec, _) in variants.items()}
    floor_fn = floor_fn or torch_fn
    for x, probe, decides in probe_cases(spec, batches, lengths, seed, data_windows):
        batch, length = x.shape[:2]
        y, rnn = model_forward(spec, weights, x)
        references = {"numpy": {"y": y, "h_n": rnn.h_n, "c_n": rnn.c_n}}
        torch_out = dict(torch_fn(x)) if torch_fn is not None else None
        floor_out = torch_out if floor_fn is torch_fn else (floor_fn(x) if floor_fn is not None else None)
        floors = float_floor(floor_out, references["numpy"])  # PyTorch runs once per probe when it serves both
        if torch_out is not None:
            references["torch"] = torch_out
        for name, (precision, run) in variants.items():
            got = run(x)
            report = reports[name]
            for against, ref in references.items():
                for output, want in ref.items():
                    if want is None:
                        continue
                    floor = floors.get(output) if precision == "fp32" and against == "numpy" else None
                    figures = compare_figures(got.get(output, np.empty(0)), want, report.tolerance, floor)
                    report.comparisons.append(Comparison(name, against, output, batch, length, *figures,
                                                         probe=probe, decides=decides, allowed=floor))
    return reports


def torch_window_fn(spec: ModelSpec, weights: Mapping[str, np.ndarray]) -> WindowFn:
    """PyTorch eager as a window function (imports torch)."""
    import torch

    from edgernn.nn import load_torch_model

    model = load_torch_model(spec, weights)

    def run(x: np.ndarray) -> dict[str, np.ndarray]:
        with torch.no_grad():
            y, h_n, c_n = model.forward_with_state(torch.from_numpy(x))
        out = {"y": y.numpy(), "h_n": h_n.numpy()}
        if c_n is not None:
            out["c_n"] = c_n.numpy()
        return out

    return run


StepFn = Callable[[np.ndarray, Mapping[str, np.ndarray]], Mapping[str, np.ndarray]]


def step_through(step: StepFn, spec: ModelSpec, x: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Feed ``x (B, T, F)`` one step at a time from zero state: per-step ``y (B, T, O)`` and final state."""
    B = x.shape[0]
    sizes = {"h_in": spec.state_size, "c_in": spec.hidden_size}  # h is projected when proj_size > 0
    state = {name: np.zeros((spec.num_layers, B, sizes[name]), np.float32)
             for name in (("h_in", "c_in") if spec.has_cell_state else ("h_in",))}
    ys = []
    for t in range(x.shape[1]):
        out = step(np.ascontiguousarray(x[:, t]), state)
        ys.append(out["y"])
        state = {k: out[k.replace("_in", "_out")] for k in state}
    final = {"h_n": state["h_in"]}
    if spec.has_cell_state:
        final["c_n"] = state["c_in"]
    return np.stack(ys, axis=1), final


def stream_parity(
    spec: ModelSpec,
    weights: Mapping[str, np.ndarray],
    variants: Mapping[str, tuple[str, StepFn]],
    *,
    windows: Mapping[str, WindowFn] | None = None,
    batches: Sequence[int] = (1, 5),
    lengths: Sequence[int] | None = None,
    seed: int = 0,
    data_windows: Sequence[np.ndarray] | None = None,
    floor_fn: WindowFn | None = None,
) -> dict[str, VariantReport]:
    """Step each step-graph variant through windows and compare with the references.

    Against the NumPy reference: ``y`` at every step (the head on each step's hidden state; the
    report's max is the largest error at any step) and at the last step, and the final state.
    Against ``windows[name]`` (the window graph of the same precision): the last ``y`` and final
    state, which is the invariant "stepping the step graph through a window gives the window graph".
    """
    reports = {name: VariantReport(name, prec, TOLERANCES[prec]) for name, (prec, _) in variants.items()}
    head_w = np.asarray(weights["head.weight"], np.float64)
    head_b = np.asarray(weights["head.bias"], np.float64)
    for x, probe, decides in probe_cases(spec, batches, lengths, seed + 1, data_windows):
        batch, length = x.shape[:2]
        _, rnn = model_forward(spec, weights, x)
        want = {"y_every_step": rnn.output @ head_w.T + head_b, "y_last_step": rnn.output[:, -1] @ head_w.T + head_b,
                "h_n": rnn.h_n, "c_n": rnn.c_n}
        floors = float_floor(floor_fn(x) if floor_fn is not None else None,
                             {"y": want["y_last_step"], "h_n": rnn.h_n, "c_n": rnn.c_n})
        floors["y_last_step"] = floors.pop("y", None)
        for name, (precision, step) in variants.items():
            ys, final = step_through(step, spec, x)
            got = {"y_every_step": ys, "y_last_step": ys[:, -1], **final}
            report = reports[name]
            refs = {"numpy": want}
            if windows and name in windows:
                w = windows[name](x)
                refs["window"] = {"y_last_step": w["y"], "h_n": w["h_n"], "c_n": w.get("c_n")}
            for against, ref in refs.items():
                for output, expected in ref.items():
                    if expected is None:
                        continue
                    floor = floors.get(output) if precision == "fp32" and against == "numpy" else None
                    figures = compare_figures(got[output], expected, report.tolerance, floor)
                    report.comparisons.append(Comparison(name, against, output, batch, length, *figures,
                                                         mode="stream", probe=probe, decides=decides, allowed=floor))
    return reports
