"""Weight-only int8 (``edgernn.quantize.weight_only``) on any ONNX model, and int8 compute for LSTM
(``edgernn.quantize.dynamic_lstm``): folding at session load, graph form, file size, rounding, and
graphs from ``torch.onnx.export``."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, numpy_helper

from edgernn.export.onnx_step_fused import build_fused_step_graph
from edgernn.export.onnx_window import build_window_graph
from edgernn.quantize.dynamic_lstm import NoInt8Kernel, lstm_to_dynamic_int8
from edgernn.quantize.weight_only import activation_grams, folded_nodes, quantize_weights_int8
from edgernn.spec import ModelSpec

LOOPS = {"Scan", "Loop", "If"}


def spec_for(cell: str, hidden: int = 64, layers: int = 2) -> ModelSpec:
    return ModelSpec(cell=cell, input_size=8, hidden_size=hidden, num_layers=layers, output_size=1, window=20)


def weights_for(spec: ModelSpec, seed: int = 0) -> dict[str, np.ndarray]:
    from edgernn.nn import build_model

    return {k: v.detach().numpy().copy() * (3.0 if k.startswith("rnn.") else 1.0)  # saturating, as trained
            for k, v in build_model(spec, seed=seed).state_dict().items()}


def session(model: onnx.ModelProto) -> ort.InferenceSession:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def windows(n: int = 64, T: int = 20, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, T, 8)).astype(np.float32)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("graph", ["window", "step"])
def test_weight_only_file_folds_to_float_at_session_load(cell, graph, tmp_path):
    spec = spec_for(cell)
    build = build_window_graph if graph == "window" else build_fused_step_graph
    fp32 = build(spec, weights_for(spec))
    result = quantize_weights_int8(fp32, calibration=None)
    model = result.model
    ops = [n.op_type for n in model.graph.node]
    assert not LOOPS & set(ops) and ops.count(cell.upper()) == spec.num_layers  # the fused op, no loop
    assert ops.count("Cast") == ops.count("Mul") == 2 * spec.num_layers + 1  # W, R per layer and the head
    # the file holds int8 weights and dequantize nodes; the session-optimized model holds neither
    assert {i.name for i in model.graph.initializer if i.data_type == TensorProto.INT8} == \
        {f"{n}_int8" for n in result.quantized}
    assert folded_nodes(model.SerializeToString(), str(tmp_path / "optimized.onnx")) == []
    optimized = onnx.load(str(tmp_path / "optimized.onnx"))
    assert not any(i.data_type == TensorProto.INT8 for i in optimized.graph.initializer)
    assert not {"Cast", "Mul", "DequantizeLinear"} & {n.op_type for n in optimized.graph.node}


def test_folded_nodes_sees_a_dequantize_that_is_not_folded(tmp_path):
    """The check can fail: DequantizeLinear on a weight is kept by onnxruntime's default optimisations."""
    spec = spec_for("lstm", hidden=8, layers=1)
    model = quantize_weights_int8(build_window_graph(spec, weights_for(spec))).model
    nodes = [n for n in model.graph.node if not (n.op_type == "Mul" and n.output[0] == "W_hh_l0")]
    for node in nodes:
        if node.op_type == "Cast" and node.input[0] == "W_hh_l0_int8":  # int8 → W_hh_l0 by DequantizeLinear
            node.CopyFrom(onnx.helper.make_node("DequantizeLinear", ["W_hh_l0_int8", "W_hh_l0_scale"], ["W_hh_l0"],
                                                axis=1))
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    for init in model.graph.initializer:  # DequantizeLinear takes a per-axis scale (G·H,) on axis 1
        if init.name == "W_hh_l0_scale":
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init).reshape(-1), init.name))
    left = folded_nodes(model.SerializeToString(), str(tmp_path / "o.onnx"))
    assert left and left[0].startswith("DequantizeLinear(W_hh_l0_int8")


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_int8_weights_file_is_at_most_30_percent_of_fp32_and_stays_close(cell):
    spec = spec_for(cell)
    fp32 = build_window_graph(spec, weights_for(spec))
    x = windows()
    result = quantize_weights_int8(fp32, calibration={"x": x[:32]})
    assert set(result.quantized.values()) == {"gptq"} and not result.skipped
    assert len(result.model.SerializeToString()) <= 0.30 * len(fp32.SerializeToString())
    want, got = session(fp32).run(None, {"x": x[32:]}), session(result.model).run(None, {"x": x[32:]})
    for w, g in zip(want, got):  # the weights' rounding only: well under a percent of the range
        assert np.abs(w - g).max() < 0.01 * (np.abs(w).max() + 1), np.abs(w - g).max()


def test_gptq_rounding_is_closer_to_fp32_than_rounding_to_nearest():
    spec = spec_for("gru")
    fp32 = build_window_graph(spec, weights_for(spec, seed=3))
    x = windows(96, seed=2)
    want = session(fp32).run(["y"], {"x": x[48:]})[0]
    error = {}
    for name, calibration in (("nearest", None), ("gptq", {"x": x[:48]})):
        got = session(quantize_weights_int8(fp32, calibration=calibration).model).run(["y"], {"x": x[48:]})[0]
        error[name] = float(np.sqrt(np.mean((got - want) ** 2)))
    assert error["gptq"] < error["nearest"], error


def test_activation_grams_are_the_activations_gram_matrices():
    """Layer 0's input weight sees the network input; the head sees the top layer's last state."""
    spec = spec_for("lstm", hidden=6, layers=2)
    fp32 = build_window_graph(spec, weights_for(spec))
    x = windows(10, T=7)
    grams = activation_grams(fp32, {"x": x}, batch=4)  # several batches: sums, then one division
    flat = x.reshape(-1, 8).astype(np.float64)
    np.testing.assert_allclose(grams["W_ih_l0"], (flat.T @ flat / len(flat))[None], rtol=1e-5)
    h_last = session(fp32).run(["h_n"], {"x": x})[0][-1].astype(np.float64)  # (B, H) top layer
    np.testing.assert_allclose(grams["head_weight"], h_last.T @ h_last / len(h_last), rtol=1e-4, atol=1e-7)
    assert grams["W_hh_l0"].shape == (1, 6, 6) and grams["W_ih_l1"].shape == (1, 6, 6)


def test_step_graph_gets_the_window_graphs_int8_values_from_its_grams():
    spec = spec_for("lstm", hidden=16, layers=2)
    weights = weights_for(spec)
    window = quantize_weights_int8(build_window_graph(spec, weights), calibration={"x": windows(16)})
    step = quantize_weights_int8(build_fused_step_graph(spec, weights), grams=window.grams)
    as_arrays = lambda m: {i.name: numpy_helper.to_array(i) for i in m.graph.initializer  # noqa: E731
                           if i.data_type == TensorProto.INT8}
    w, s = as_arrays(window.model), as_arrays(step.model)
    assert set(w) == set(s) and all(np.array_equal(w[k], s[k]) for k in w)


def test_a_graph_from_torch_onnx_export_gets_int8_weights(tmp_path):
    """Not written by edgernn: weights found by the node that consumes them, whatever their names."""
    import torch

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = torch.nn.LSTM(8, 32, num_layers=2, batch_first=True)
            self.head = torch.nn.Linear(32, 3)

        def forward(self, x):
            return self.head(self.rnn(x)[0][:, -1])

    torch.manual_seed(0)
    net = Net().eval()
    path = tmp_path / "net.onnx"
    torch.onnx.export(net, (torch.zeros(1, 20, 8),), str(path), dynamo=False, input_names=["x"],
                      output_names=["y"], dynamic_axes={"x": {0: "batch"}})
    fp32 = onnx.load(str(path))
    x = windows(40)
    result = quantize_weights_int8(fp32, calibration={"x": x[:20]})
    assert len(result.quantized) == 2 * 2 + 1 and set(result.quantized.values()) == {"gptq"}
    assert folded_nodes(result.model.SerializeToString(), str(tmp_path / "o.onnx")) == []
    want = net(torch.from_numpy(x[20:])).detach().numpy()
    got = session(result.model).run(None, {"x": x[20:]})[0]
    assert np.abs(got - want).max() < 0.01 * (np.abs(want).max() + 1)
    dynamic = lstm_to_dynamic_int8(fp32, grams=result.grams).model
    assert {n.op_type for n in dynamic.graph.node} & {"LSTM", "DynamicQuantizeLSTM"} == {"DynamicQuantizeLSTM"}
    assert np.abs(session(dynamic).run(None, {"x": x[20:]})[0] - want).max() < 0.05 * (np.abs(want).max() + 1)


def test_int8_compute_is_refused_for_gru_with_the_reason():
    spec = spec_for("gru", hidden=8, layers=1)
    with pytest.raises(NoInt8Kernel, match="onnxruntime has no int8 GRU kernel"):
        lstm_to_dynamic_int8(build_window_graph(spec, weights_for(spec)))


@pytest.mark.parametrize("graph", ["window", "step"])
def test_dynamic_lstm_graph_has_no_loop_and_int8_weights_per_channel(graph):
    spec = spec_for("lstm", hidden=16, layers=2)
    build = build_window_graph if graph == "window" else build_fused_step_graph
    model = lstm_to_dynamic_int8(build(spec, weights_for(spec))).model
    ops = [n.op_type for n in model.graph.node]
    assert not LOOPS & set(ops) and "LSTM" not in ops and ops.count("DynamicQuantizeLSTM") == 2
    inits = {i.name: i for i in model.graph.initializer}
    for layer, K in ((0, 8), (1, 16)):
        assert list(inits[f"W_ih_l{layer}_int8"].dims) == [1, K, 64]  # (D, I, 4H): the contrib op's layout
        assert list(inits[f"W_hh_l{layer}_scale"].dims) == [1, 64]  # one scale per gate unit
