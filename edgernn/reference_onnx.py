"""The ONNX ``RNN``, ``GRU`` and ``LSTM`` operators in NumPy, as the ONNX operator specification
writes them: the oracle ``edgernn validate model.onnx`` checks each recurrent node of any file against.

Everything runs in float64. Inputs are the node's, in its order (absent optional inputs are None)::

    RNN:  X, W, R, B, sequence_lens, initial_h
    GRU:  X, W, R, B, sequence_lens, initial_h
    LSTM: X, W, R, B, sequence_lens, initial_h, initial_c, P

``layout=0``: X (T, B, F), initial states (D, B, H), Y (T, D, B, H), Y_h/Y_c (D, B, H);
``layout=1``: X (B, T, F), initial states (B, D, H), Y (B, T, D, H), Y_h/Y_c (B, D, H).
W (D, G·H, F), R (D, G·H, H), B (D, 2·G·H) = [Wb, Rb]; gate blocks in ONNX order:
LSTM ``i, o, f, c`` (peepholes P (D, 3H) ``i, o, f``), GRU ``z, r, h``, RNN ``i``.

Equations (f, g, h the activations; ``clip`` bounds each gate's pre-activation to [-clip, clip]; the
cell state C_t is not clipped before h, which is how onnxruntime reads the specification's "input of
activations" — measured, its LSTM differs by up to 0.06 at clip 0.5 when C_t is clipped too)::

    RNN:  H_t = f(X_t W_i^T + H_{t-1} R_i^T + Wb_i + Rb_i)
    GRU:  z = f(X_t W_z^T + H_{t-1} R_z^T + Wb_z + Rb_z);  r = f(… r …)
          linear_before_reset=0: h~ = g(X_t W_h^T + (r ⊙ H_{t-1}) R_h^T + Rb_h + Wb_h)
          linear_before_reset=1: h~ = g(X_t W_h^T + r ⊙ (H_{t-1} R_h^T + Rb_h) + Wb_h)
          H_t = (1 - z) ⊙ h~ + z ⊙ H_{t-1}
    LSTM: i = f(X_t W_i^T + H_{t-1} R_i^T + P_i ⊙ C_{t-1} + Wb_i + Rb_i)
          f = f(… + P_f ⊙ C_{t-1} …)  (input_forget=1: f = 1 - i)
          c~ = g(X_t W_c^T + H_{t-1} R_c^T + Wb_c + Rb_c);  C_t = f ⊙ C_{t-1} + i ⊙ c~
          o = f(… + P_o ⊙ C_t …);  H_t = o ⊙ h(C_t)

``direction``: forward, reverse (the sequence read from its last valid step to its first) or
bidirectional (forward first). ``sequence_lens``: a sequence's steps at or past its length are not
run: Y is zero there and Y_h/Y_c hold the state at its last valid step. ``activation_alpha`` and
``activation_beta`` are consumed in order by the activations that take them (forward direction's
first), others take their defaults.

Only numpy and ``edgernn.errors`` are imported.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from edgernn.errors import BadInputError

GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}
DEFAULT_ACTIVATIONS = {"RNN": ("Tanh",), "GRU": ("Sigmoid", "Tanh"), "LSTM": ("Sigmoid", "Tanh", "Tanh")}
# name → (takes alpha, default alpha, takes beta, default beta)
ACTIVATION_PARAMS = {
    "relu": (False, 0.0, False, 0.0), "tanh": (False, 0.0, False, 0.0), "sigmoid": (False, 0.0, False, 0.0),
    "affine": (True, 1.0, True, 0.0), "leakyrelu": (True, 0.01, False, 0.0), "thresholdedrelu": (True, 1.0, False, 0.0),
    "scaledtanh": (True, 1.0, True, 1.0), "hardsigmoid": (True, 0.2, True, 0.5), "elu": (True, 1.0, False, 0.0),
    "softsign": (False, 0.0, False, 0.0), "softplus": (False, 0.0, False, 0.0),
}


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def activation(name: str, alpha: float, beta: float):
    """The activation ``name`` (ONNX spelling, any case) as a function of one array."""
    key = name.lower()
    table = {
        "relu": lambda x: np.maximum(x, 0.0),
        "tanh": np.tanh,
        "sigmoid": _sigmoid,
        "affine": lambda x: alpha * x + beta,
        "leakyrelu": lambda x: np.where(x >= 0, x, alpha * x),
        "thresholdedrelu": lambda x: np.where(x >= alpha, x, 0.0),
        "scaledtanh": lambda x: alpha * np.tanh(beta * x),
        "hardsigmoid": lambda x: np.clip(alpha * x + beta, 0.0, 1.0),
        "elu": lambda x: np.where(x >= 0, x, alpha * (np.exp(np.minimum(x, 0.0)) - 1.0)),
        "softsign": lambda x: x / (1.0 + np.abs(x)),
        "softplus": lambda x: np.logaddexp(0.0, x),
    }
    if key not in table:
        raise BadInputError(f"unknown RNN activation {name!r}; the ONNX operators define {', '.join(sorted(table))}")
    return table[key]


def activations(op: str, attrs: Mapping, directions: int) -> list[list]:
    """Per direction, the op's activation functions with their alpha/beta."""
    per = len(DEFAULT_ACTIVATIONS[op])
    names = [n.decode() if isinstance(n, bytes) else str(n)
             for n in (attrs.get("activations") or DEFAULT_ACTIVATIONS[op] * directions)]
    if len(names) == per and directions == 2:
        names = names * 2
    if len(names) != per * directions:
        raise BadInputError(f"{op}: expected {per * directions} activations for {directions} direction(s), got {names}")
    alphas, betas = list(attrs.get("activation_alpha") or []), list(attrs.get("activation_beta") or [])
    funcs = []
    for name in names:
        takes_alpha, alpha, takes_beta, beta = ACTIVATION_PARAMS.get(name.lower(), (False, 0.0, False, 0.0))
        if takes_alpha and alphas:
            alpha = float(alphas.pop(0))
        if takes_beta and betas:
            beta = float(betas.pop(0))
        funcs.append(activation(name, alpha, beta))
    return [funcs[d * per:(d + 1) * per] for d in range(directions)]


def _step(op: str, x_t, h, c, W, R, Wb, Rb, P, acts, clip, lbr, input_forget):
    """One step of one direction: x_t (B, F), h (B, H), c (B, H) or None → (h', c')."""
    H = R.shape[1]
    cl = (lambda v: np.clip(v, -clip, clip)) if clip is not None else (lambda v: v)  # noqa: E731
    xw = x_t @ W.T + Wb  # (B, G·H)
    if op == "RNN":
        return acts[0](cl(xw + h @ R.T + Rb)), None
    if op == "GRU":
        f, g = acts
        hr = h @ R.T  # (B, 3H)
        z = f(cl(xw[:, :H] + hr[:, :H] + Rb[:H]))
        r = f(cl(xw[:, H:2 * H] + hr[:, H:2 * H] + Rb[H:2 * H]))
        if lbr:
            pre = xw[:, 2 * H:] + r * (hr[:, 2 * H:] + Rb[2 * H:])
        else:
            pre = xw[:, 2 * H:] + (r * h) @ R[2 * H:].T + Rb[2 * H:]
        return (1.0 - z) * g(cl(pre)) + z * h, None
    f, g, hact = acts
    gates = xw + h @ R.T + Rb  # (B, 4H): i, o, f, c
    Pi, Po, Pf = (np.zeros(H), np.zeros(H), np.zeros(H)) if P is None else (P[:H], P[H:2 * H], P[2 * H:])
    i = f(cl(gates[:, :H] + Pi * c))
    forget = 1.0 - i if input_forget else f(cl(gates[:, 2 * H:3 * H] + Pf * c))
    c_new = forget * c + i * g(cl(gates[:, 3 * H:]))
    o = f(cl(gates[:, H:2 * H] + Po * c_new))
    return o * hact(c_new), c_new  # C_t itself is not clipped


def onnx_rnn(op: str, inputs: Sequence[np.ndarray | None], attrs: Mapping) -> list[np.ndarray]:
    """The node's outputs ``[Y, Y_h]`` (``+ [Y_c]`` for LSTM), float64, in the node's layout."""
    if op not in GATES:
        raise BadInputError(f"expected an RNN, GRU or LSTM node, got {op}")
    ins = list(inputs) + [None] * (8 - len(inputs))
    X, W, R, B, seq_lens, h0, c0, P = (None if a is None else np.asarray(a) for a in ins[:8])
    layout = int(attrs.get("layout", 0))
    direction = attrs.get("direction", "forward")
    if isinstance(direction, bytes):
        direction = direction.decode()
    D = 2 if direction == "bidirectional" else 1
    G, H = GATES[op], int(W.shape[1]) // GATES[op]
    if attrs.get("hidden_size") not in (None, H):
        raise BadInputError(f"{op}: hidden_size {attrs['hidden_size']} does not match W of shape {W.shape}")
    X = np.asarray(X, np.float64)
    if layout == 1:  # batch first: to (T, B, F), states to (D, B, H)
        X = X.transpose(1, 0, 2)
        h0 = None if h0 is None else np.asarray(h0).transpose(1, 0, 2)
        c0 = None if c0 is None else np.asarray(c0).transpose(1, 0, 2)
    T, Bn = X.shape[:2]
    lens = np.full(Bn, T, np.int64) if seq_lens is None else np.asarray(seq_lens, np.int64).reshape(Bn)
    clip = attrs.get("clip")
    lbr = int(attrs.get("linear_before_reset", 0))
    input_forget = int(attrs.get("input_forget", 0))
    acts = activations(op, attrs, D)
    Y = np.zeros((T, D, Bn, H))
    Y_h, Y_c = np.zeros((D, Bn, H)), np.zeros((D, Bn, H))
    for d in range(D):
        reverse = direction == "reverse" or d == 1
        Wd, Rd = np.asarray(W[d], np.float64), np.asarray(R[d], np.float64)
        Bd = np.zeros(2 * G * H) if B is None else np.asarray(B[d], np.float64)
        Pd = None if P is None else np.asarray(P[d], np.float64)
        h = np.zeros((Bn, H)) if h0 is None else np.asarray(h0[d], np.float64).copy()
        c = np.zeros((Bn, H)) if c0 is None else np.asarray(c0[d], np.float64).copy()
        for b in range(Bn):  # each sequence alone, over its own valid steps
            hb, cb = h[b:b + 1], c[b:b + 1]
            steps = range(lens[b] - 1, -1, -1) if reverse else range(lens[b])
            for t in steps:
                hb, cb_new = _step(op, X[t, b:b + 1], hb, cb, Wd, Rd, Bd[:G * H], Bd[G * H:], Pd, acts[d],
                                   None if clip is None else float(clip), lbr, input_forget)
                cb = cb if cb_new is None else cb_new
                Y[t, d, b] = hb[0]
            Y_h[d, b], Y_c[d, b] = hb[0], cb[0]
    if layout == 1:
        Y, Y_h, Y_c = Y.transpose(2, 0, 1, 3), Y_h.transpose(1, 0, 2), Y_c.transpose(1, 0, 2)
    return [Y, Y_h, Y_c] if op == "LSTM" else [Y, Y_h]
