"""The PyTorch side of `edgernn bench --checkpoint`: the only bench module that imports torch.

Two references, timed with the same harness as the runtime (``edgernn.bench.timing.measure``):

- **PyTorch eager**: the checkpoint's model on windows at batch 1 and B, and a streaming step — the
  model's RNN on a ``(1, 1, F)`` slice with the state carried from the previous call, then the head;
- **plain torch.onnx.export**: what a user gets without edgernn — ``torch.onnx.export(...,
  dynamo=False)`` of that same one-step module, ``(x[1, 1, F], h (, c)) → (y, h' (, c'))`` with the
  ONNX LSTM/GRU op inside, run one step at a time in onnxruntime, carrying the state.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from edgernn.bench.timing import BenchSettings, WindowFigures, cycling, measure, step_frames, window_inputs
from edgernn.checkpoint import load_checkpoint
from edgernn.errors import BadInputError
from edgernn.runtime.backends import OnnxBackend
from edgernn.spec import ModelSpec

ARCHITECTURE = ("cell", "input_size", "hidden_size", "num_layers", "bidirectional", "output_size", "head")


def check_same_model(bundle_spec: ModelSpec, checkpoint_spec: ModelSpec, checkpoint: Path) -> None:
    differ = [f"{k} {getattr(checkpoint_spec, k)!r} vs {getattr(bundle_spec, k)!r}"
              for k in ARCHITECTURE if getattr(checkpoint_spec, k) != getattr(bundle_spec, k)]
    if differ:
        raise BadInputError(f"{checkpoint}: not the bundle's model ({'; '.join(differ)}, checkpoint vs bundle); "
                            "pass the checkpoint the bundle was exported from")


def _one_step_module(model):
    """``(x[B, 1, F], h (, c)) → (y, h' (, c'))``: the model's RNN for one step, then its head."""
    import torch

    class OneStep(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn, self.head = model.rnn, model.head

        def forward(self, x_t, *state):
            out, new_state = self.rnn(x_t, state if len(state) == 2 else state[0])  # out: (B, 1, H)
            new_state = new_state if isinstance(new_state, tuple) else (new_state,)
            return (self.head(out[:, -1]), *new_state)

    return OneStep().eval()


def _zero_state(spec: ModelSpec) -> list[np.ndarray]:
    shape = (spec.num_layers * spec.num_directions, 1, spec.hidden_size)  # (L·D, B, H)
    return [np.zeros(shape, np.float32) for _ in range(2 if spec.has_cell_state else 1)]


class TorchStepper:
    """One streaming step in PyTorch eager per call, carrying the state."""

    def __init__(self, step_module, spec: ModelSpec, frames: np.ndarray):
        import torch

        self.step_module = step_module
        self.frames = cycling(torch.from_numpy(frames[:, :, None, :]))  # each (1, 1, F)
        self.state = tuple(torch.from_numpy(s) for s in _zero_state(spec))

    def __call__(self):
        y, *state = self.step_module(self.frames(), *self.state)
        self.state = tuple(state)
        return y


class OnnxStepper:
    """One step of the plainly exported model in onnxruntime per call, carrying the state."""

    def __init__(self, session, spec: ModelSpec, frames: np.ndarray):
        self.run = session.run
        self.frames = cycling(frames[:, :, None, :])  # each (1, 1, F)
        self.state_names = [i.name for i in session.get_inputs()][1:]
        self.state = dict(zip(self.state_names, _zero_state(spec)))

    def __call__(self):
        y, *state = self.run(None, {"x_t": self.frames(), **self.state})
        self.state = dict(zip(self.state_names, state))
        return y


def bench_pytorch(model, spec: ModelSpec, settings: BenchSettings, length: int) -> dict[str, Any]:
    import torch

    x1 = torch.from_numpy(window_inputs(spec, 1, length, settings.seed))
    xb = torch.from_numpy(window_inputs(spec, settings.batch, length, settings.seed + 1))
    step = None
    with torch.inference_mode():
        window = WindowFigures(length=length, batch=settings.batch,
                               batch1=measure(lambda: model(x1), settings.repeat),
                               batched=measure(lambda: model(xb), settings.repeat))
        if not spec.bidirectional:
            stepper = TorchStepper(_one_step_module(model), spec, step_frames(spec, 1, settings.seed))
            step = measure(stepper, settings.repeat)
    return {"version": torch.__version__, "threads": torch.get_num_threads(), "window": window, "step": step}


def bench_plain_export(model, spec: ModelSpec, settings: BenchSettings) -> dict[str, Any]:
    """``torch.onnx.export(dynamo=False)`` of the one-step module, stepped in onnxruntime."""
    import torch

    if spec.bidirectional:
        return {"skipped": "bidirectional: no one-step model to export"}
    step_module = _one_step_module(model)
    state_names = ["h_in", "c_in"][: 2 if spec.has_cell_state else 1]
    example = (torch.zeros(1, 1, spec.input_size), *(torch.from_numpy(s) for s in _zero_state(spec)))
    with tempfile.TemporaryDirectory(prefix="edgernn-bench-") as tmp:
        file = Path(tmp) / "plain_step.onnx"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(step_module, example, str(file), dynamo=False,
                                  input_names=["x_t", *state_names],
                                  output_names=["y", *(n.replace("_in", "_out") for n in state_names)])
        except Exception as e:  # the exporter raises many kinds; the reference is optional
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            return {"skipped": f"torch.onnx.export failed: {first}"}
        session = OnnxBackend(file, settings.threads).session
        stepper = OnnxStepper(session, spec, step_frames(spec, 1, settings.seed))
        return {"step": measure(stepper, settings.repeat), "size_bytes": file.stat().st_size,
                "how": "torch.onnx.export(dynamo=False) of (x[1,1,F], state) -> (y, state), "
                       "run one step at a time in onnxruntime"}


def load_reference(checkpoint: Path, bundle_spec: ModelSpec):
    """The checkpoint (numpy weights, no torch yet), checked to be the bundle's model."""
    ckpt = load_checkpoint(checkpoint)
    check_same_model(bundle_spec, ckpt.spec, checkpoint)
    return ckpt


def bench_torch(ckpt, settings: BenchSettings, length: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """PyTorch eager figures and the plain-export step figures for a checkpoint from ``load_reference``."""
    import torch

    from edgernn.nn import load_torch_model

    torch.set_num_threads(settings.threads)
    model = load_torch_model(ckpt.spec, ckpt.weights)
    return bench_pytorch(model, ckpt.spec, settings, length), bench_plain_export(model, ckpt.spec, settings)
