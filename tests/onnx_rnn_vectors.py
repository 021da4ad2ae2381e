"""Small ONNX RNN/GRU/LSTM node models written with onnx.helper, covering the operator attributes the
ONNX backend vectors leave out (reverse, bidirectional, clip, activations with alpha/beta,
input_forget, linear_before_reset 0/1, sequence_lens, initial states), and the ONNX backend vectors
themselves when they are on disk (the onnx 1.22 wheel's ``backend/test/data/node``, fetched by
tools/setup_env.sh into .cache/onnx-node)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}
PREFIXES = ("test_lstm_", "test_gru_", "test_rnn_", "test_simple_rnn_")


def node_dirs() -> list[Path]:
    """The ONNX backend test vectors for LSTM/GRU/RNN, from EDGERNN_ONNX_NODE_DATA, the repository's
    .cache/onnx-node, or the installed onnx package (up to 1.22 ships them)."""
    roots = [os.environ.get("EDGERNN_ONNX_NODE_DATA", ""),
             Path(__file__).resolve().parent.parent / ".cache/onnx-node/onnx/backend/test/data/node"]
    try:
        roots.append(Path(onnx.__file__).parent / "backend/test/data/node")
    except Exception:
        pass
    for root in roots:
        if root and Path(root).is_dir():
            found = sorted(p for p in Path(root).iterdir() if p.name.startswith(PREFIXES))
            if found:
                return found
    return []


def read_vector(d: Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(inputs by name, expected outputs by name) of a backend test directory's test_data_set_0."""
    model = onnx.load(str(d / "model.onnx"))
    data = d / "test_data_set_0"
    inits = {i.name for i in model.graph.initializer}
    in_names = [i.name for i in model.graph.input if i.name not in inits]
    out_names = [o.name for o in model.graph.output]
    inputs = {n: numpy_helper.to_array(onnx.load_tensor(str(data / f"input_{k}.pb"))) for k, n in enumerate(in_names)}
    outputs = {n: numpy_helper.to_array(onnx.load_tensor(str(data / f"output_{k}.pb"))) for k, n in enumerate(out_names)}
    return inputs, outputs


def rnn_model(op: str, *, hidden=3, features=2, batch=3, steps=4, direction="forward", layout=0, with_bias=True,
              seq_lens=False, initial=False, peepholes=False, seed=0, opset=14, **attrs):
    """One ``op`` node over graph inputs X (and sequence_lens, initial_h/c); weights as initializers.
    Returns (model, feeds)."""
    rng = np.random.default_rng(seed)
    D, G = (2 if direction == "bidirectional" else 1), GATES[op]
    f32 = lambda *s: rng.uniform(-1, 1, s).astype(np.float32)  # noqa: E731
    X = f32(batch, steps, features) if layout else f32(steps, batch, features)
    state_shape = (batch, D, hidden) if layout else (D, batch, hidden)
    inits = [numpy_helper.from_array(f32(D, G * hidden, features), "W"),
             numpy_helper.from_array(f32(D, G * hidden, hidden), "R")]
    names = ["X", "W", "R"]
    feeds = {"X": X}
    graph_inputs = [helper.make_tensor_value_info("X", TensorProto.FLOAT, list(X.shape))]
    names.append("B" if with_bias else "")
    if with_bias:
        inits.append(numpy_helper.from_array(f32(D, 2 * G * hidden), "B"))
    names.append("sequence_lens" if seq_lens else "")
    if seq_lens:
        feeds["sequence_lens"] = np.array(([steps, 1] + [max(1, steps - 1)] * batch)[:batch], np.int32)
        graph_inputs.append(helper.make_tensor_value_info("sequence_lens", TensorProto.INT32, [batch]))
    state_names = ["initial_h"] + (["initial_c"] if op == "LSTM" else [])
    for s in state_names:
        names.append(s if initial else "")
        if initial:
            feeds[s] = f32(*state_shape)
            graph_inputs.append(helper.make_tensor_value_info(s, TensorProto.FLOAT, list(state_shape)))
    if peepholes:
        names.append("P")
        inits.append(numpy_helper.from_array(f32(D, 3 * hidden), "P"))
    while names and names[-1] == "":
        names.pop()
    outs = ["Y", "Y_h"] + (["Y_c"] if op == "LSTM" else [])
    node = helper.make_node(op, names, outs, name=f"{op.lower()}_node", hidden_size=hidden, direction=direction,
                            **({"layout": layout} if layout else {}), **attrs)
    graph = helper.make_graph([node], f"{op.lower()}_graph", graph_inputs,
                              [helper.make_tensor_value_info(o, TensorProto.FLOAT, [None] * (4 if o == "Y" else 3)) for o in outs], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model, feeds


# name: (op, options)
HELPER_VECTORS = {
    "lstm_reverse_seq_lens_initial": ("LSTM", dict(direction="reverse", seq_lens=True, initial=True)),
    "lstm_bidirectional_peepholes": ("LSTM", dict(direction="bidirectional", peepholes=True, initial=True)),
    "lstm_input_forget_clip": ("LSTM", dict(input_forget=1, clip=0.2, peepholes=True, initial=True)),
    "lstm_activations_alpha_beta": ("LSTM", dict(activations=["HardSigmoid", "ScaledTanh", "LeakyRelu"],
                                                 activation_alpha=[0.3, 0.9, 0.05], activation_beta=[0.4, 1.1])),
    "gru_linear_before_reset_0_bidirectional": ("GRU", dict(direction="bidirectional", linear_before_reset=0,
                                                            seq_lens=True)),
    "gru_linear_before_reset_1_reverse_initial": ("GRU", dict(direction="reverse", linear_before_reset=1,
                                                              initial=True)),
    "gru_activations_clip": ("GRU", dict(activations=["Sigmoid", "Softsign"], clip=0.3, linear_before_reset=1)),
    "rnn_bidirectional_relu_seq_lens": ("RNN", dict(direction="bidirectional", activations=["Relu", "Elu"],
                                                    activation_alpha=[0.6], seq_lens=True, initial=True)),
    "rnn_affine_no_bias": ("RNN", dict(activations=["Affine"], activation_alpha=[0.5], activation_beta=[0.2],
                                       with_bias=False)),
    "rnn_softplus_thresholded": ("RNN", dict(direction="bidirectional",
                                             activations=["Softplus", "ThresholdedRelu"], activation_alpha=[0.1])),
    "lstm_layout_1": ("LSTM", dict(layout=1, initial=True)),
}
