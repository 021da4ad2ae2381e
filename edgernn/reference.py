"""The LSTM and GRU equations in NumPy: the independent oracle every exported variant is checked against.

Everything is computed in float64 and follows PyTorch's gate order and weight layout, so a
PyTorch ``state_dict`` (converted to numpy arrays) can be passed in as it is:

LSTM, gates stacked ``i, f, g, o`` in ``W_ih`` (4H, F), ``W_hh`` (4H, H)::

    i = sigmoid(W_ii x_t + b_ii + W_hi h + b_hi)
    f = sigmoid(W_if x_t + b_if + W_hf h + b_hf)
    g = tanh(W_ig x_t + b_ig + W_hg h + b_hg)
    o = sigmoid(W_io x_t + b_io + W_ho h + b_ho)
    c_t = f * c + i * g
    h_t = o * tanh(c_t)

GRU, gates stacked ``r, z, n`` in ``W_ih`` (3H, F), ``W_hh`` (3H, H); the reset gate multiplies
the hidden matmul *after* it (ONNX's ``linear_before_reset=1``)::

    r = sigmoid(W_ir x_t + b_ir + W_hr h + b_hr)
    z = sigmoid(W_iz x_t + b_iz + W_hz h + b_hz)
    n = tanh(W_in x_t + b_in + r * (W_hn h + b_hn))
    h_t = (1 - z) * n + z * h

A stack runs layer by layer; a bidirectional layer runs a second direction over the reversed
sequence and concatenates both outputs, forward first, as the next layer's input. Dropout is a
training-time device and does not appear here.

Only numpy, the standard library and ``edgernn.spec``/``edgernn.errors`` are imported.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from edgernn.errors import BadInputError
from edgernn.spec import CELLS, ModelSpec

GATES = {"lstm": 4, "gru": 3}


@dataclass(frozen=True)
class RnnResult:
    """What a recurrent stack returns, laid out as ``torch.nn.LSTM/GRU(batch_first=True)`` does."""

    output: np.ndarray  # (B, T, D*H): the top layer's output at every step
    h_n: np.ndarray  # (L*D, B, H): final hidden state, layer-major, direction-minor
    c_n: np.ndarray | None  # (L*D, B, H): final cell state, LSTM only


# --------------------------------------------------------------------------------------------
# One time step
# --------------------------------------------------------------------------------------------


def sigmoid(x: np.ndarray) -> np.ndarray:
    """The logistic function, written through tanh so it never overflows."""
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _f64(a: np.ndarray | None, rows: int) -> np.ndarray:
    """``a`` as float64, or a zero bias of length ``rows`` when it is absent."""
    return np.zeros(rows) if a is None else np.asarray(a, dtype=np.float64)


def lstm_cell(
    x_t: np.ndarray,
    h: np.ndarray,
    c: np.ndarray,
    W_ih: np.ndarray,
    W_hh: np.ndarray,
    b_ih: np.ndarray | None,
    b_hh: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    """One LSTM step: x_t (B, F), h (B, H), c (B, H), W_ih (4H, F), W_hh (4H, H) → (h_t, c_t)."""
    x_t, h, c = (np.asarray(a, dtype=np.float64) for a in (x_t, h, c))
    W_ih, W_hh = np.asarray(W_ih, dtype=np.float64), np.asarray(W_hh, dtype=np.float64)
    b_ih, b_hh = _f64(b_ih, W_ih.shape[0]), _f64(b_hh, W_hh.shape[0])

    gates = x_t @ W_ih.T + b_ih + h @ W_hh.T + b_hh  # (B, 4H)
    gate_i, gate_f, gate_g, gate_o = np.split(gates, 4, axis=1)  # 4 × (B, H)
    i = sigmoid(gate_i)
    f = sigmoid(gate_f)
    g = np.tanh(gate_g)
    o = sigmoid(gate_o)

    c_t = f * c + i * g  # (B, H)
    h_t = o * np.tanh(c_t)  # (B, H)
    return h_t, c_t


def gru_cell(
    x_t: np.ndarray,
    h: np.ndarray,
    W_ih: np.ndarray,
    W_hh: np.ndarray,
    b_ih: np.ndarray | None,
    b_hh: np.ndarray | None,
) -> np.ndarray:
    """One GRU step: x_t (B, F), h (B, H), W_ih (3H, F), W_hh (3H, H) → h_t (B, H)."""
    x_t, h = np.asarray(x_t, dtype=np.float64), np.asarray(h, dtype=np.float64)
    W_ih, W_hh = np.asarray(W_ih, dtype=np.float64), np.asarray(W_hh, dtype=np.float64)
    b_ih, b_hh = _f64(b_ih, W_ih.shape[0]), _f64(b_hh, W_hh.shape[0])

    x_gates = x_t @ W_ih.T + b_ih  # (B, 3H)
    h_gates = h @ W_hh.T + b_hh  # (B, 3H)
    x_r, x_z, x_n = np.split(x_gates, 3, axis=1)  # 3 × (B, H)
    h_r, h_z, h_n = np.split(h_gates, 3, axis=1)  # 3 × (B, H)

    r = sigmoid(x_r + h_r)
    z = sigmoid(x_z + h_z)
    n = np.tanh(x_n + r * h_n)
    h_t = (1.0 - z) * n + z * h  # (B, H)
    return h_t


# --------------------------------------------------------------------------------------------
# One direction of one layer
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DirectionWeights:
    """The four tensors of one direction of one layer; biases are zeros when the model has none."""

    W_ih: np.ndarray  # (G*H, F_in)
    W_hh: np.ndarray  # (G*H, H)
    b_ih: np.ndarray  # (G*H,)
    b_hh: np.ndarray  # (G*H,)


def run_direction(
    cell: str,
    x: np.ndarray,
    h0: np.ndarray,
    c0: np.ndarray | None,
    w: DirectionWeights,
    *,
    reverse: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Run one cell over x (B, T, F_in) from (h0, c0), last step first when ``reverse``.

    Returns the output at every step in the input's time order (B, T, H), and the final h and c
    (B, H) — "final" meaning after the last step processed, which is t = 0 in reverse.
    """
    steps = range(x.shape[1] - 1, -1, -1) if reverse else range(x.shape[1])
    h, c = h0, c0
    outputs: list[np.ndarray | None] = [None] * x.shape[1]
    for t in steps:
        x_t = x[:, t, :]  # (B, F_in)
        if cell == "lstm":
            h, c = lstm_cell(x_t, h, c, w.W_ih, w.W_hh, w.b_ih, w.b_hh)
        else:
            h = gru_cell(x_t, h, w.W_ih, w.W_hh, w.b_ih, w.b_hh)
        outputs[t] = h
    output = np.stack(outputs, axis=1)  # (B, T, H)
    return output, h, c


# --------------------------------------------------------------------------------------------
# The stack: validation, then layer after layer
# --------------------------------------------------------------------------------------------


def _array(name: str, value: object) -> np.ndarray:
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise BadInputError(
            f"expected {name} to be a numeric array, got {type(value).__name__}"
        ) from None


def _weight(
    weights: Mapping[str, np.ndarray], name: str, shape: tuple[int, ...], *, required: bool, where: str
) -> np.ndarray | None:
    """``weights[name]`` as float64, checked against ``shape``; None when absent and not required."""
    if name not in weights:
        if not required:
            return None
        raise BadInputError(
            f"missing weight {name!r}: expected an array of shape {shape} for {where}; "
            f"check num_layers, bidirectional and the prefix"
        )
    value = _array(name, weights[name])
    if value.shape != shape:
        raise BadInputError(
            f"expected {name} of shape {shape} for {where}, got {value.shape}"
        )
    return value


def _direction_weights(
    cell: str,
    weights: Mapping[str, np.ndarray],
    prefix: str,
    layer: int,
    reverse: bool,
    input_size: int,
    hidden_size: int,
) -> tuple[DirectionWeights, list[str]]:
    """Read and check one direction's tensors; also return the names it used."""
    rows = GATES[cell] * hidden_size
    suffix = f"_l{layer}" + ("_reverse" if reverse else "")
    where = f"layer {layer}{' reverse' if reverse else ''} of a {cell} with hidden size {hidden_size}"
    names = {kind: f"{prefix}{kind}{suffix}" for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}

    W_ih = _weight(weights, names["weight_ih"], (rows, input_size), required=True, where=where)
    W_hh = _weight(weights, names["weight_hh"], (rows, hidden_size), required=True, where=where)
    # bias=False drops both biases; one without the other is a broken state dict.
    has_bias = names["bias_ih"] in weights or names["bias_hh"] in weights
    b_ih = _weight(weights, names["bias_ih"], (rows,), required=has_bias, where=where)
    b_hh = _weight(weights, names["bias_hh"], (rows,), required=has_bias, where=where)
    zeros = np.zeros(rows)  # (G*H,)
    used = [names["weight_ih"], names["weight_hh"]] + ([names["bias_ih"], names["bias_hh"]] if has_bias else [])
    return DirectionWeights(W_ih, W_hh, zeros if b_ih is None else b_ih, zeros if b_hh is None else b_hh), used


def _initial_state(name: str, value: np.ndarray | None, shape: tuple[int, int, int]) -> np.ndarray:
    if value is None:
        return np.zeros(shape)  # (L*D, B, H)
    state = _array(name, value)
    if state.shape != shape:
        raise BadInputError(
            f"expected {name} of shape (L*D, B, H) = {shape}, got {state.shape}"
        )
    return state


def _sizes_from_weights(cell: str, weights: Mapping[str, np.ndarray], prefix: str) -> tuple[int, int]:
    """(input_size, hidden_size) read off layer 0's weights."""
    sizes = []
    for kind in ("weight_ih", "weight_hh"):
        name = f"{prefix}{kind}_l0"
        if name not in weights:
            raise BadInputError(
                f"missing weight {name!r}: expected the {cell} weights of layer 0; "
                f"check the prefix (got names like {sorted(weights)[:3]})"
            )
        value = np.shape(weights[name])
        if len(value) != 2 or value[0] % GATES[cell] != 0:
            raise BadInputError(
                f"expected {name} of shape ({GATES[cell]}*H, ...) for a {cell}, got {tuple(value)}"
            )
        sizes.append(value[1] if kind == "weight_ih" else value[0] // GATES[cell])
    return sizes[0], sizes[1]


def _run_stack(
    cell: str,
    weights: Mapping[str, np.ndarray],
    x: object,
    *,
    num_layers: int,
    bidirectional: bool,
    input_size: int,
    hidden_size: int,
    h0: np.ndarray | None,
    c0: np.ndarray | None,
    prefix: str,
) -> RnnResult:
    x = _array("x", x)
    if x.ndim != 3 or x.shape[2] != input_size:
        raise BadInputError(f"expected x of shape (B, T, {input_size}), got {x.shape}")
    if x.shape[1] == 0:
        raise BadInputError(f"expected x with at least one time step, got shape {x.shape}")
    if c0 is not None and cell != "lstm":
        raise BadInputError("expected no c0 for a gru (it has no cell state), got one")

    num_directions = 2 if bidirectional else 1
    batch = x.shape[0]
    state_shape = (num_layers * num_directions, batch, hidden_size)
    h0 = _initial_state("h0", h0, state_shape)  # (L*D, B, H)
    c0 = _initial_state("c0", c0, state_shape) if cell == "lstm" else None  # (L*D, B, H)

    used: set[str] = set()
    h_n, c_n = [], []
    layer_input = x  # (B, T, F) for layer 0, (B, T, D*H) above it
    for layer in range(num_layers):
        layer_input_size = input_size if layer == 0 else num_directions * hidden_size
        outputs = []
        for direction in range(num_directions):
            reverse = direction == 1
            w, names = _direction_weights(
                cell, weights, prefix, layer, reverse, layer_input_size, hidden_size
            )
            used.update(names)
            index = layer * num_directions + direction
            c_init = None if c0 is None else c0[index]  # (B, H)
            output, h_last, c_last = run_direction(cell, layer_input, h0[index], c_init, w, reverse=reverse)
            outputs.append(output)  # (B, T, H)
            h_n.append(h_last)
            c_n.append(c_last)
        layer_input = np.concatenate(outputs, axis=2)  # (B, T, D*H)

    unused = sorted(k for k in weights if k.startswith(prefix) and k not in used)
    if unused:
        raise BadInputError(
            f"expected only the weights of a {num_layers}-layer "
            f"{'bidirectional ' if bidirectional else ''}{cell}, got also {', '.join(unused)}; "
            f"check num_layers and bidirectional"
        )
    return RnnResult(
        output=layer_input,  # (B, T, D*H)
        h_n=np.stack(h_n, axis=0),  # (L*D, B, H)
        c_n=np.stack(c_n, axis=0) if cell == "lstm" else None,  # (L*D, B, H)
    )


def rnn_forward(
    cell: str,
    weights: Mapping[str, np.ndarray],
    x: np.ndarray,
    *,
    num_layers: int,
    bidirectional: bool = False,
    h0: np.ndarray | None = None,
    c0: np.ndarray | None = None,
    prefix: str = "rnn.",
) -> RnnResult:
    """Run an LSTM/GRU stack over x (B, T, F), batch first, as ``torch.nn.LSTM/GRU`` would.

    ``weights`` maps PyTorch state_dict names (``{prefix}weight_ih_l0`` …) to arrays; the input
    and hidden sizes are read off layer 0. ``h0``/``c0`` are (L*D, B, H), zeros when omitted.
    """
    if cell not in CELLS:
        raise BadInputError(f"cell must be one of {', '.join(CELLS)}, got {cell!r}")
    if not isinstance(num_layers, int) or num_layers < 1:
        raise BadInputError(f"num_layers must be a positive integer, got {num_layers!r}")
    input_size, hidden_size = _sizes_from_weights(cell, weights, prefix)
    return _run_stack(
        cell, weights, x,
        num_layers=num_layers, bidirectional=bidirectional,
        input_size=input_size, hidden_size=hidden_size,
        h0=h0, c0=c0, prefix=prefix,
    )


def model_forward(
    spec: ModelSpec, weights: Mapping[str, np.ndarray], x: np.ndarray
) -> tuple[np.ndarray, RnnResult]:
    """The whole model: the ``rnn.`` stack, then the ``head.`` Linear on the last step's output.

    Returns the raw head output (B, O) — logits for a classifier, normalised units for regression
    and forecasting — and the stack's ``RnnResult``. Sizes are checked against ``spec``.
    """
    result = _run_stack(
        spec.cell, weights, x,
        num_layers=spec.num_layers, bidirectional=spec.bidirectional,
        input_size=spec.input_size, hidden_size=spec.hidden_size,
        h0=None, c0=None, prefix="rnn.",
    )
    features = spec.num_directions * spec.hidden_size
    where = f"a head from {features} features to {spec.output_size} outputs"
    head_W = _weight(weights, "head.weight", (spec.output_size, features), required=True, where=where)
    head_b = _weight(weights, "head.bias", (spec.output_size,), required=False, where=where)

    last = result.output[:, -1, :]  # (B, D*H)
    y = last @ head_W.T  # (B, O)
    if head_b is not None:
        y = y + head_b  # (B, O)
    return y, result
