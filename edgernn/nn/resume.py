"""``resume.pt``: everything needed to continue a run exactly where it stopped.

After every epoch the training loop writes ``RUN/resume.pt`` (temporary file, then rename, so a
crash leaves the previous epoch's state whole). It holds the last epoch's model and optimizer
state, the gradient scaler, the early-stopping state (best loss, best epoch, best weights), the
history, the Python/NumPy/torch random states, and the run's spec, config and data source as JSON
text. Only tensors and plain Python values are saved; it is read with ``weights_only=True``, so
loading never unpickles arbitrary objects. Data order needs no saved state: epoch e's shuffle is the
e-th permutation of a generator seeded with ``seed`` (``fit.ShardedShuffle`` replays it), so a
resumed epoch sees the same batches.
"""

from __future__ import annotations

import io
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgernn.bundle import atomic_write_bytes
from edgernn.errors import BadInputError, ModelFileError

RESUME_NAME = "resume.pt"
FORMAT = "edgernn-resume/1"


@dataclass
class EarlyStopping:
    """The best validation loss so far, its epoch and a CPU fp32 copy of its weights."""

    val_loss: float = float("inf")
    epoch: int = 0
    state: dict[str, torch.Tensor] | None = None

    def update(self, val_loss: float, epoch: int, model: torch.nn.Module) -> bool:
        if val_loss < self.val_loss:
            self.val_loss, self.epoch, self.state = val_loss, epoch, cpu_state(model.state_dict())
            return True
        return False


@dataclass
class ResumeState:
    epoch: int
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    scaler: dict[str, Any]
    best: EarlyStopping
    history: list[dict[str, float]]
    rng: dict[str, Any]
    run: dict[str, Any] = field(default_factory=dict)  # spec, config, data: as written to checkpoint.json
    train_seconds: float = 0.0
    samples_seen: int = 0


def cpu_state(state: dict[str, Any]) -> dict[str, Any]:
    """A detached CPU copy of a (possibly nested) state dict; float tensors in fp32."""
    if isinstance(state, torch.Tensor):
        t = state.detach().to("cpu", copy=True)
        return t.float() if t.is_floating_point() else t
    if isinstance(state, dict):
        return {k: cpu_state(v) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(cpu_state(v) for v in state)
    return state


def capture_rng() -> dict[str, Any]:
    np_state = np.random.get_state(legacy=False)
    np_state["state"]["key"] = np_state["state"]["key"].tolist()
    rng = {"python": random.getstate(), "numpy": np_state, "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return rng


def restore_rng(rng: dict[str, Any]) -> None:
    random.setstate(_tuples(rng["python"]))
    np_state = dict(rng["numpy"])
    np_state["state"] = dict(np_state["state"], key=np.asarray(np_state["state"]["key"], dtype=np.uint32))
    np.random.set_state(np_state)
    torch.set_rng_state(rng["torch"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])


def _tuples(value):
    """random.setstate wants the nested tuples getstate gave (a round trip may turn them into lists)."""
    return tuple(_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


def save_resume(run_dir: Path, state: ResumeState) -> Path:
    payload = {
        "format": FORMAT,
        "epoch": state.epoch,
        "model": cpu_state(state.model),
        "optimizer": cpu_state(state.optimizer),
        "scaler": state.scaler,
        "best": {"val_loss": state.best.val_loss, "epoch": state.best.epoch, "state": state.best.state},
        "history": state.history,
        "rng": state.rng,
        "run": json.dumps(state.run),
        "train_seconds": state.train_seconds,
        "samples_seen": state.samples_seen,
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    path = Path(run_dir) / RESUME_NAME
    atomic_write_bytes(path, buffer.getvalue())
    return path


def load_resume(run_dir: Path) -> ResumeState:
    """Read ``RUN/resume.pt`` (``weights_only=True``) or raise one line saying why it cannot."""
    run_dir = Path(run_dir)
    path = run_dir / RESUME_NAME if run_dir.is_dir() or not run_dir.name.endswith(".pt") else run_dir
    if not path.is_file():
        raise BadInputError(f"--resume {run_dir}: no {RESUME_NAME} there; it is written after each epoch of "
                            "`edgernn train` (runs made before resume existed cannot be continued)")
    try:
        p = torch.load(path, map_location="cpu", weights_only=True)
        if p.get("format") != FORMAT:
            raise ModelFileError(f"{path}: expected format {FORMAT}, got {p.get('format')!r}")
        best = p["best"]
        return ResumeState(
            epoch=int(p["epoch"]), model=p["model"], optimizer=p["optimizer"], scaler=p["scaler"],
            best=EarlyStopping(float(best["val_loss"]), int(best["epoch"]), best["state"]),
            history=list(p["history"]), rng=p["rng"], run=json.loads(p["run"]),
            train_seconds=float(p["train_seconds"]), samples_seen=int(p["samples_seen"]),
        )
    except ModelFileError:
        raise
    except Exception as e:  # torch raises several types for a damaged or foreign file
        raise ModelFileError(f"{path}: not a readable edgernn resume state ({type(e).__name__}: {e})") from None
