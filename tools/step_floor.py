"""The streaming step against onnxruntime's floor and a plain torch.onnx.export, in one run.

    python tools/step_floor.py [--hidden 64 --layers 2 --features 8 --threads 1 --repeat 3000]

For an LSTM and a GRU (weights from a seeded torch model; a step's time does not depend on their
values) it exports a bundle with int8-weights and int8-dynamic, then times, one step per call, one
thread, p50 over ``--repeat`` calls after a warm-up:

- floor: one call of a one-node graph (Identity on a (1, F) tensor) with ``session.run`` and with a
  pre-bound ``IOBinding`` — what any step costs in onnxruntime from Python, whatever the model;
- edgernn: ``StreamSession.step_raw`` (the bound one-step fused graph) of each ONNX step variant;
- the elementary-op step graph (``edgernn.export.onnx_step``), bound the same way, for comparison;
- plain: ``torch.onnx.export`` of the model's one-step module, stepped in onnxruntime with
  ``session.run`` the way its users do (``edgernn.bench.torch_compare``).

Prints a table (``--json`` for the figures). Timings on a shared machine are noisy: compare rows of
one run only.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgernn.bench import BenchSettings, measure  # noqa: E402


def floor(threads: int, repeat: int) -> dict:
    import onnx
    import onnxruntime as ort
    from onnx import helper

    graph = helper.make_graph([helper.make_node("Identity", ["a"], ["b"])], "floor",
                              [helper.make_tensor_value_info("a", onnx.TensorProto.FLOAT, [1, 8])],
                              [helper.make_tensor_value_info("b", onnx.TensorProto.FLOAT, [1, 8])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    a, b = np.zeros((1, 8), np.float32), np.zeros((1, 8), np.float32)
    binding = session.io_binding()
    values = [ort.OrtValue.ortvalue_from_numpy(a), ort.OrtValue.ortvalue_from_numpy(b)]
    binding.bind_ortvalue_input("a", values[0])
    binding.bind_ortvalue_output("b", values[1])
    return {"run": measure(lambda: session.run(None, {"a": a}), repeat).p50_us,
            "bound": measure(lambda: session.run_with_iobinding(binding), repeat).p50_us}


def elementary_step(spec, weights, threads: int, repeat: int) -> float:
    from edgernn.export.onnx_step import build_step_graph
    from edgernn.runtime.backends import OnnxBackend
    from edgernn.runtime.stream import StreamSession

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "elementary.onnx"
        path.write_bytes(build_step_graph(spec, weights).SerializeToString())
        session = StreamSession(spec, OnnxBackend(path, threads))
        frame = np.zeros((1, spec.input_size), np.float32)
        return measure(lambda: session.step_raw(frame), repeat).p50_us


def one_cell(cell: str, args) -> dict:
    from edgernn.bench.torch_compare import bench_plain_export
    from edgernn.export import export_bundle
    from edgernn.nn import build_model
    from edgernn.runtime import load
    from edgernn.spec import ModelSpec

    spec = ModelSpec(cell=cell, input_size=args.features, hidden_size=args.hidden, num_layers=args.layers,
                     output_size=1, window=20)
    model = build_model(spec, seed=0).eval()
    weights = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
    settings = BenchSettings(threads=args.threads, repeat=args.repeat, cold_runs=0)
    frames = np.random.default_rng(0).standard_normal((256, 1, spec.input_size)).astype(np.float32)
    figures = {}
    with tempfile.TemporaryDirectory() as tmp:
        bundle = Path(tmp) / "b"
        export_bundle(spec, weights, bundle, quantize=("int8-weights", "int8-dynamic"), validate=False,
                      measure_latency=False)
        for v in load(bundle).manifest.variants:
            if v.graph != "step":
                continue
            session = load(bundle, variant=v.name, threads=args.threads).stream()
            i = iter(range(1 << 62))
            figures[f"edgernn {v.precision}"] = measure(lambda: session.step_raw(frames[next(i) % 256]),
                                                        args.repeat).p50_us
    figures["edgernn fp32, elementary ops"] = elementary_step(spec, weights, args.threads, args.repeat)
    plain = bench_plain_export(model, spec, settings)
    figures["plain torch.onnx.export"] = plain["step"].p50_us if "step" in plain else None
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--features", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    import onnxruntime

    result = {"onnxruntime": onnxruntime.__version__, "threads": args.threads,
              "model": f"{args.layers}x{args.hidden}, {args.features} features",
              "floor_us": floor(args.threads, args.repeat),
              "step_p50_us": {cell: one_cell(cell, args) for cell in ("lstm", "gru")}}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"onnxruntime {result['onnxruntime']}, {args.threads} thread(s), {result['model']}; p50 µs per step")
    print(f"floor (one-node graph): run {result['floor_us']['run']:.1f}, bound {result['floor_us']['bound']:.1f}")
    for cell, figures in result["step_p50_us"].items():
        plain = figures["plain torch.onnx.export"]
        for name, us in figures.items():
            ratio = f"  {plain / us:.2f}× faster than plain" if plain and us and name != "plain torch.onnx.export" else ""
            print(f"  {cell:<5} {name:<32} {us:8.1f}{ratio}")


if __name__ == "__main__":
    main()
