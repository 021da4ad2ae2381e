"""Your own module through ``torch.onnx.export``, when edgernn's writers do not recognise it: each
exporter in turn until one converts and its window graph matches the module on the probes; the step
graph from a declared ``split=(backbone, head)``."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from edgernn import __version__
from edgernn.bundle import atomic_write_bytes
from edgernn.errors import EdgeRnnError, ExportError
from edgernn.export import module_graph
from edgernn.export.module_bundle import Built, window_runner
from edgernn.export.module_lint import RNN_TYPES, ModuleFacts, batch_first_numpy, probe_inputs
from edgernn.export.module_parity import bundle_parity, module_outputs
from edgernn.export.module_torch import EXPORTERS, BatchFirst, attach_head, export_head, export_window, first_line
from edgernn.runtime.backends import OnnxBackend
from edgernn.spec import ModelSpec


def output_time_major(facts: ModuleFacts) -> bool:
    """Does a time-major module also return its first output time-major? Measured with batch ≠ time."""
    if not facts.time_major:
        return False
    B, T = facts.batch, facts.length
    b = B + 2 if facts.batch_flexible and B == T else B
    t = T + 3 if facts.time_flexible and b == T else T
    with torch.no_grad():
        y = module_outputs(facts, probe_inputs(facts, b, t, seed=5), output_time_major=False)[0]
    return y.ndim >= 2 and y.shape[0] == t and y.shape[1] == b and b != t


def _generic_spec(facts: ModuleFacts, y: np.ndarray, backbone: nn.Module | None, head, labels, task) -> ModelSpec:
    rnns = [m for _, m in facts.recurrent]
    rnn = backbone if backbone is not None else (rnns[0] if len(rnns) == 1 and isinstance(rnns[0], RNN_TYPES) else None)
    known = {}
    if rnn is not None:  # the module's one LSTM/GRU: what is known of it
        known = dict(cell="lstm" if isinstance(rnn, nn.LSTM) else "gru", hidden_size=rnn.hidden_size,
                     num_layers=rnn.num_layers, bidirectional=rnn.bidirectional, dropout=float(rnn.dropout),
                     proj_size=getattr(rnn, "proj_size", 0))
    every = y.ndim == 3 and y.shape[1] == facts.length
    return ModelSpec(module=facts.name, head=head, labels=labels, task=task,
                     input_size=None if facts.takes_ids else int(facts.example[0].shape[-1]),
                     num_layers=known.pop("num_layers", None), output_size=int(y.shape[-1]) if y.ndim >= 2 else 1,
                     head_input="every_step" if every else "last_step",
                     vocab_size=facts.vocab if facts.takes_ids else 0, **known)


def generic_graphs(facts: ModuleFacts, tmp: Path, exporter: str, validate: bool, versions: dict, *, head, labels,
                    task, reason, backbone, head_layer, split) -> Built:
    """torch.onnx.export, exporter by exporter, until one converts and matches the module."""
    out_tm = output_time_major(facts)
    B = max(2, facts.batch) if facts.batch_flexible else facts.batch
    args = probe_inputs(facts, B, facts.length, seed=3)
    wants = module_outputs(facts, args, output_time_major=out_tm)
    spec = _generic_spec(facts, wants[0], backbone, head, labels, task)
    feeds = batch_first_numpy(facts, args)
    wrapper = BatchFirst(facts.module, facts.time_major, out_tm).eval()
    names = dict(input_names=list(feeds), output_names=["y"] + [f"y_{k}" for k in range(1, len(wants))])
    tried, window, used = [], None, None
    for name in (EXPORTERS if exporter == "auto" else (exporter,)):
        started = time.perf_counter()
        try:
            model, note = export_window(wrapper, tuple(torch.from_numpy(v) for v in feeds.values()), exporter=name,
                                  batch_dynamic=facts.batch_flexible, time_dynamic=facts.time_flexible, **names, **versions)
        except EdgeRnnError as e:
            tried.append({"exporter": name, "seconds": round(time.perf_counter() - started, 3), "result": str(e)})
            continue
        except Exception as e:  # the exporter's own error: kept as one line
            tried.append({"exporter": name, "seconds": round(time.perf_counter() - started, 3),
                          "result": f"{type(e).__name__}: {first_line(e)}"})
            continue
        seconds = round(time.perf_counter() - started, 3)
        model = _with_metadata(model, spec, "window")
        problem = _window_problem(facts, spec, model, tmp, out_tm) if validate else ""
        tried.append({"exporter": name, "seconds": seconds, "result": problem or ("ok; " + note if note else "ok")})
        if not problem:
            window, used = model, name
            break
    if window is None:
        raise ExportError(_failure_line(facts, tried))

    streaming = {"supported": False, "reason": f"{reason}; edgernn streams an LSTM/GRU followed by a per-step head: "
                                               "declare split=(backbone, head) if the module is one"}
    step = None
    if backbone is not None:
        as_np = lambda t: t.detach().numpy().astype(np.float32)  # noqa: E731
        weights = {f"rnn.{k}": as_np(v) for k, v in backbone.state_dict().items()}
        if isinstance(head_layer, nn.Linear):
            weights["head.weight"] = as_np(head_layer.weight)
            weights["head.bias"] = as_np(head_layer.bias) if head_layer.bias is not None else \
                np.zeros(head_layer.out_features, np.float32)
            step = module_graph.build_step_graph(spec, weights, **versions)
        else:
            features = module_graph.build_step_graph(spec, weights, head=False, **versions)
            head_model = export_head(head_layer, spec.state_size, **versions)
            outputs = ["y", "h_out"] + (["c_out"] if spec.has_cell_state else [])
            step = attach_head(features, head_model, outputs)
        streaming = {"supported": True, "split": list(split), **module_graph.state_description(spec)}
    return Built(spec, window, step, streaming, used, output_time_major=out_tm, tried=tried,
                  layers={"backbone": split[0], "head": split[1]} if backbone is not None else {})


def _with_metadata(model: onnx.ModelProto, spec: ModelSpec, graph: str) -> onnx.ModelProto:
    onnx.helper.set_model_props(model, {"edgernn.spec": json.dumps(spec.to_dict()), "edgernn.graph": graph,
                                        "edgernn.version": __version__})
    return model


def _window_problem(facts: ModuleFacts, spec: ModelSpec, model: onnx.ModelProto, tmp: Path, out_tm: bool) -> str:
    """Why this exported window graph will not do ("" when it matches the module)."""
    path = tmp / ".candidate.onnx"
    atomic_write_bytes(path, model.SerializeToString())
    try:
        backend = OnnxBackend(path)
    except EdgeRnnError as e:
        return str(e)
    finally:
        path.unlink(missing_ok=True)
    run = window_runner(backend)
    try:
        report = bundle_parity(facts, spec, {"candidate": ("fp32", run)}, {}, output_time_major=out_tm)[0]
    except Exception as e:  # the runtime's own error on a probe, e.g. a length the trace fixed
        return f"fails on the probes ({type(e).__name__}: {first_line(e)})"
    if report.passed:
        return ""
    return f"does not match the module (max abs {report.worst()['max_abs']:.3g})"


def _failure_line(facts: ModuleFacts, tried: list[dict]) -> str:
    cls = facts.name.rsplit(".", 1)[-1]
    names = {"torchscript": "torch.onnx.export (TorchScript)", "dynamo": "torch.export (dynamo)"}
    if facts.unconvertible:
        return (f"cannot export {cls}: {', '.join(facts.unconvertible)} has no ONNX conversion in "
                f"{' nor '.join(names[t['exporter']] for t in tried)}")
    return f"cannot export {cls}: " + "; ".join(f"{names[t['exporter']]}: {t['result']}" for t in tried)
