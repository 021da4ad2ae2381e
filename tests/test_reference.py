"""The NumPy reference against torch.nn.LSTM/GRU (float64) and against onnx's reference evaluator."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from edgernn.errors import BadInputError
from edgernn.reference import RnnResult, gru_cell, lstm_cell, model_forward, rnn_forward
from edgernn.spec import ModelSpec

torch = pytest.importorskip("torch")

INPUT_SIZE, HIDDEN_SIZE = 3, 5
TORCH_TOL = 1e-10


class Net(torch.nn.Module):
    """The shape edgernn trains: an RNN backbone and a Linear head on the last step."""

    def __init__(self, cell, input_size, hidden_size, num_layers, bidirectional, output_size=2, bias=True):
        super().__init__()
        rnn_class = torch.nn.LSTM if cell == "lstm" else torch.nn.GRU
        self.rnn = rnn_class(input_size, hidden_size, num_layers, bias=bias,
                             batch_first=True, bidirectional=bidirectional)
        self.head = torch.nn.Linear(hidden_size * (2 if bidirectional else 1), output_size)

    def forward(self, x, state=None):
        out, state = self.rnn(x, state)
        return self.head(out[:, -1, :]), out, state


def numpy_weights(module):
    return {name: t.detach().numpy().copy() for name, t in module.state_dict().items()}


def make_net(cell, num_layers, bidirectional, seed, bias=True):
    torch.manual_seed(seed)
    net = Net(cell, INPUT_SIZE, HIDDEN_SIZE, num_layers, bidirectional, bias=bias).double().eval()
    return net


def max_err(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) if np.size(a) else 0.0


# ~ 12 architectures × 3 lengths = 36 cases; batch and initial state alternate between them.
SWEEP = [
    pytest.param(cell, layers, bidi, length, id=f"{cell}-L{layers}-{'bi' if bidi else 'uni'}-T{length}")
    for cell, layers, bidi, length in itertools.product(("lstm", "gru"), (1, 2, 3), (False, True), (1, 7, 40))
]


@pytest.mark.parametrize("cell,num_layers,bidirectional,length", SWEEP)
def test_matches_torch(cell, num_layers, bidirectional, length):
    seed = 1000 * (cell == "gru") + 100 * num_layers + 10 * bidirectional + length
    net = make_net(cell, num_layers, bidirectional, seed)
    rng = np.random.default_rng(seed)
    batch = 1 if (num_layers + length) % 2 else 3
    with_state = (num_layers + int(bidirectional)) % 2 == 0
    D = 2 if bidirectional else 1
    x = 2.0 * rng.standard_normal((batch, length, INPUT_SIZE))
    h0 = rng.standard_normal((num_layers * D, batch, HIDDEN_SIZE)) if with_state else None
    c0 = rng.standard_normal((num_layers * D, batch, HIDDEN_SIZE)) if with_state and cell == "lstm" else None

    ours = rnn_forward(cell, numpy_weights(net.rnn), x, num_layers=num_layers,
                       bidirectional=bidirectional, h0=h0, c0=c0, prefix="")

    state = None
    if with_state:
        state = torch.from_numpy(h0) if cell == "gru" else (torch.from_numpy(h0), torch.from_numpy(c0))
    with torch.no_grad():
        out, theirs_state = net.rnn(torch.from_numpy(x), state)
    theirs_h = theirs_state[0] if cell == "lstm" else theirs_state

    assert isinstance(ours, RnnResult)
    assert ours.output.dtype == np.float64
    assert ours.output.shape == (batch, length, D * HIDDEN_SIZE)
    assert ours.h_n.shape == (num_layers * D, batch, HIDDEN_SIZE)
    assert max_err(ours.output, out.numpy()) < TORCH_TOL
    assert max_err(ours.h_n, theirs_h.numpy()) < TORCH_TOL
    if cell == "lstm":
        assert max_err(ours.c_n, theirs_state[1].numpy()) < TORCH_TOL
    else:
        assert ours.c_n is None


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_matches_torch_without_bias(cell):
    net = make_net(cell, 2, True, seed=7, bias=False)
    weights = numpy_weights(net)
    assert not any("bias" in name for name in weights if name.startswith("rnn."))
    x = np.random.default_rng(7).standard_normal((3, 9, INPUT_SIZE))
    ours = rnn_forward(cell, weights, x, num_layers=2, bidirectional=True)
    with torch.no_grad():
        out, state = net.rnn(torch.from_numpy(x))
    assert max_err(ours.output, out.numpy()) < TORCH_TOL
    assert max_err(ours.h_n, (state[0] if cell == "lstm" else state).numpy()) < TORCH_TOL


@pytest.mark.parametrize("cell,num_layers,bidirectional", [("lstm", 2, True), ("gru", 1, False), ("gru", 3, True)])
def test_model_forward_matches_torch_head(cell, num_layers, bidirectional):
    net = make_net(cell, num_layers, bidirectional, seed=11)
    spec = ModelSpec(cell=cell, input_size=INPUT_SIZE, hidden_size=HIDDEN_SIZE, num_layers=num_layers,
                     bidirectional=bidirectional, head="classification", output_size=2)
    x = np.random.default_rng(11).standard_normal((4, 12, INPUT_SIZE))
    y, result = model_forward(spec, numpy_weights(net), x)
    with torch.no_grad():
        y_torch, out, _ = net(torch.from_numpy(x))
    assert y.shape == (4, 2) and y.dtype == np.float64
    assert max_err(y, y_torch.numpy()) < TORCH_TOL
    assert max_err(result.output, out.numpy()) < TORCH_TOL


def test_cells_match_torch_cells():
    rng = np.random.default_rng(3)
    x_t = rng.standard_normal((4, INPUT_SIZE))
    h, c = rng.standard_normal((4, HIDDEN_SIZE)), rng.standard_normal((4, HIDDEN_SIZE))
    torch.manual_seed(3)
    lstm = torch.nn.LSTMCell(INPUT_SIZE, HIDDEN_SIZE).double()
    gru = torch.nn.GRUCell(INPUT_SIZE, HIDDEN_SIZE).double()
    w = numpy_weights(lstm)
    h_t, c_t = lstm_cell(x_t, h, c, w["weight_ih"], w["weight_hh"], w["bias_ih"], w["bias_hh"])
    with torch.no_grad():
        h_ref, c_ref = lstm(torch.from_numpy(x_t), (torch.from_numpy(h), torch.from_numpy(c)))
    assert max_err(h_t, h_ref.numpy()) < TORCH_TOL and max_err(c_t, c_ref.numpy()) < TORCH_TOL
    w = numpy_weights(gru)
    h_t = gru_cell(x_t, h, w["weight_ih"], w["weight_hh"], w["bias_ih"], w["bias_hh"])
    with torch.no_grad():
        h_ref = gru(torch.from_numpy(x_t), torch.from_numpy(h))
    assert max_err(h_t, h_ref.numpy()) < TORCH_TOL


def test_saturated_gates_stay_finite():
    rng = np.random.default_rng(5)
    W_ih = 1e4 * rng.standard_normal((4 * HIDDEN_SIZE, INPUT_SIZE))
    W_hh = rng.standard_normal((4 * HIDDEN_SIZE, HIDDEN_SIZE))
    with np.errstate(all="raise"):
        h_t, c_t = lstm_cell(rng.standard_normal((2, INPUT_SIZE)), np.zeros((2, HIDDEN_SIZE)),
                             np.zeros((2, HIDDEN_SIZE)), W_ih, W_hh, None, None)
    assert np.all(np.isfinite(h_t)) and np.all(np.isfinite(c_t))


# --------------------------------------------------------------------------------------------
# Against onnx's reference evaluator: the test writes a single LSTM/GRU node itself
# --------------------------------------------------------------------------------------------

# PyTorch stacks LSTM gates i, f, g, o and GRU gates r, z, n; ONNX wants i, o, f, c and z, r, h.
ONNX_GATE_ORDER = {"lstm": [0, 3, 1, 2], "gru": [1, 0, 2]}


def to_onnx_blocks(cell, a):
    """Reorder PyTorch's stacked gate blocks (G*H, ...) into ONNX's order."""
    blocks = np.split(a, len(ONNX_GATE_ORDER[cell]), axis=0)  # G × (H, ...)
    return np.concatenate([blocks[k] for k in ONNX_GATE_ORDER[cell]], axis=0)  # (G*H, ...)


def run_onnx_node(cell, weights, x, h0, c0, bidirectional):
    from onnx import TensorProto, helper
    from onnx.reference import ReferenceEvaluator

    suffixes = ["_l0", "_l0_reverse"] if bidirectional else ["_l0"]
    W = np.stack([to_onnx_blocks(cell, weights[f"weight_ih{s}"]) for s in suffixes])  # (D, G*H, I)
    R = np.stack([to_onnx_blocks(cell, weights[f"weight_hh{s}"]) for s in suffixes])  # (D, G*H, H)
    B = np.stack([np.concatenate([to_onnx_blocks(cell, weights[f"bias_ih{s}"]),
                                  to_onnx_blocks(cell, weights[f"bias_hh{s}"])]) for s in suffixes])  # (D, 2*G*H)
    X = np.ascontiguousarray(x.transpose(1, 0, 2))  # (T, B, I)

    D, H = len(suffixes), HIDDEN_SIZE
    attrs = {"hidden_size": H, "direction": "bidirectional" if bidirectional else "forward"}
    if cell == "gru":
        attrs["linear_before_reset"] = 1
    inputs = ["X", "W", "R", "B", "", "initial_h"] + (["initial_c"] if cell == "lstm" else [])
    outputs = ["Y", "Y_h"] + (["Y_c"] if cell == "lstm" else [])
    node = helper.make_node(cell.upper(), inputs, outputs, **attrs)
    dbl = TensorProto.DOUBLE
    graph = helper.make_graph(
        [node], "single_rnn",
        [helper.make_tensor_value_info(n, dbl, None) for n in inputs if n],
        [helper.make_tensor_value_info(n, dbl, None) for n in outputs],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    feeds = {"X": X, "W": W, "R": R, "B": B, "initial_h": h0}
    if cell == "lstm":
        feeds["initial_c"] = c0
    results = ReferenceEvaluator(model).run(None, feeds)
    Y = results[0]  # (T, D, B, H)
    T, _, batch, _ = Y.shape
    output = Y.transpose(2, 0, 1, 3).reshape(batch, T, D * H)  # (B, T, D*H)
    return output, results[1], (results[2] if cell == "lstm" else None)


@pytest.mark.parametrize("cell,bidirectional", list(itertools.product(("lstm", "gru"), (False, True))))
def test_matches_onnx_reference_evaluator(cell, bidirectional):
    rng = np.random.default_rng(21)
    G, H, D = (4 if cell == "lstm" else 3), HIDDEN_SIZE, (2 if bidirectional else 1)
    weights = {}
    for s in ["_l0", "_l0_reverse"][:D]:
        weights[f"weight_ih{s}"] = 0.5 * rng.standard_normal((G * H, INPUT_SIZE))
        weights[f"weight_hh{s}"] = 0.5 * rng.standard_normal((G * H, H))
        weights[f"bias_ih{s}"] = 0.5 * rng.standard_normal(G * H)
        weights[f"bias_hh{s}"] = 0.5 * rng.standard_normal(G * H)
    x = rng.standard_normal((3, 8, INPUT_SIZE))
    h0 = rng.standard_normal((D, 3, H))
    c0 = rng.standard_normal((D, 3, H)) if cell == "lstm" else None

    ours = rnn_forward(cell, weights, x, num_layers=1, bidirectional=bidirectional, h0=h0, c0=c0, prefix="")
    output, h_n, c_n = run_onnx_node(cell, weights, x, h0, c0, bidirectional)

    assert max_err(ours.output, output) < 1e-10
    assert max_err(ours.h_n, h_n) < 1e-10
    if cell == "lstm":
        assert max_err(ours.c_n, c_n) < 1e-10


# --------------------------------------------------------------------------------------------
# Bad input: one-line messages that say what was expected and what came
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lstm2():
    torch.manual_seed(0)
    rnn = torch.nn.LSTM(8, 4, num_layers=2, batch_first=True)
    return {"rnn." + k: v for k, v in numpy_weights(rnn).items()}


def test_error_wrong_rank(lstm2):
    with pytest.raises(BadInputError, match=r"^expected x of shape \(B, T, 8\), got \(4, 8\)$"):
        rnn_forward("lstm", lstm2, np.zeros((4, 8)), num_layers=2)


def test_error_wrong_feature_count(lstm2):
    with pytest.raises(BadInputError, match=r"^expected x of shape \(B, T, 8\), got \(2, 5, 7\)$"):
        rnn_forward("lstm", lstm2, np.zeros((2, 5, 7)), num_layers=2)


def test_error_no_time_steps(lstm2):
    with pytest.raises(BadInputError, match=r"expected x with at least one time step, got shape \(2, 0, 8\)"):
        rnn_forward("lstm", lstm2, np.zeros((2, 0, 8)), num_layers=2)


def test_error_missing_weight(lstm2):
    weights = {k: v for k, v in lstm2.items() if k != "rnn.weight_hh_l1"}
    with pytest.raises(BadInputError, match=r"missing weight 'rnn.weight_hh_l1': expected an array of shape \(16, 4\)"):
        rnn_forward("lstm", weights, np.zeros((2, 5, 8)), num_layers=2)


def test_error_missing_layer_zero_names_the_prefix(lstm2):
    with pytest.raises(BadInputError, match=r"missing weight 'model.rnn.weight_ih_l0'.*check the prefix"):
        rnn_forward("lstm", lstm2, np.zeros((2, 5, 8)), num_layers=2, prefix="model.rnn.")


def test_error_one_bias_without_the_other(lstm2):
    weights = {k: v for k, v in lstm2.items() if k != "rnn.bias_hh_l0"}
    with pytest.raises(BadInputError, match=r"missing weight 'rnn.bias_hh_l0'"):
        rnn_forward("lstm", weights, np.zeros((2, 5, 8)), num_layers=2)


def test_error_wrong_weight_shape(lstm2):
    weights = dict(lstm2, **{"rnn.weight_ih_l1": np.zeros((16, 5))})
    with pytest.raises(BadInputError, match=r"expected rnn.weight_ih_l1 of shape \(16, 4\) .*got \(16, 5\)"):
        rnn_forward("lstm", weights, np.zeros((2, 5, 8)), num_layers=2)


def test_error_weights_left_over(lstm2):
    with pytest.raises(BadInputError, match=r"got also rnn.bias_hh_l1, .*check num_layers and bidirectional"):
        rnn_forward("lstm", lstm2, np.zeros((2, 5, 8)), num_layers=1)


def test_error_wrong_initial_state(lstm2):
    with pytest.raises(BadInputError, match=r"expected h0 of shape \(L\*D, B, H\) = \(2, 3, 4\), got \(1, 3, 4\)"):
        rnn_forward("lstm", lstm2, np.zeros((3, 5, 8)), num_layers=2, h0=np.zeros((1, 3, 4)))


def test_error_c0_for_gru():
    torch.manual_seed(0)
    weights = {"rnn." + k: v for k, v in numpy_weights(torch.nn.GRU(8, 4)).items()}
    with pytest.raises(BadInputError, match=r"expected no c0 for a gru"):
        rnn_forward("gru", weights, np.zeros((3, 5, 8)), num_layers=1, c0=np.zeros((1, 3, 4)))


def test_error_unknown_cell(lstm2):
    with pytest.raises(BadInputError, match=r"cell must be one of lstm, gru, got 'rnn'"):
        rnn_forward("rnn", lstm2, np.zeros((2, 5, 8)), num_layers=2)


def test_error_model_forward_checks_spec(lstm2):
    spec = ModelSpec(cell="lstm", input_size=8, hidden_size=4, num_layers=2, output_size=3)
    with pytest.raises(BadInputError, match=r"missing weight 'head.weight': expected an array of shape \(3, 4\)"):
        model_forward(spec, lstm2, np.zeros((2, 5, 8)))
    weights = dict(lstm2, **{"head.weight": np.zeros((3, 4))})
    wide = ModelSpec(cell="lstm", input_size=8, hidden_size=6, num_layers=2, output_size=3)
    with pytest.raises(BadInputError, match=r"expected rnn.weight_ih_l0 of shape \(24, 8\) .*got \(16, 8\)"):
        model_forward(wide, weights, np.zeros((2, 5, 8)))
    y, _ = model_forward(spec, weights, np.zeros((2, 5, 8)))  # head.bias absent → zeros
    assert y.shape == (2, 3) and not y.any()
