"""Where training runs and in which arithmetic: ``--device`` and ``--precision``.

``resolve_device`` turns ``auto|cpu|cuda|cuda:N|mps`` into a ``torch.device`` (auto: CUDA when
present, else CPU; MPS is used only when asked), or raises one line saying what is missing.
``Precision`` wraps ``torch.autocast``: parameters, optimizer state and checkpoints stay fp32;
only the forward pass (and so the backward) runs in bf16 or fp16. fp16 uses a gradient scaler
on CUDA and MPS; fp16 is refused on CPU, where oneDNN has no fp16 LSTM kernel (use bf16 there).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from edgernn.errors import BadInputError

DEVICES = ("auto", "cpu", "cuda", "cuda:N", "mps")
PRECISIONS = ("fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(name: str, *, local_rank: int | None = None) -> torch.device:
    """The device ``name`` asks for; under torchrun, ``cuda``/``auto`` means ``cuda:LOCAL_RANK``."""
    name = (name or "auto").strip().lower()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    if name == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise BadInputError("--device mps: this PyTorch build or machine has no MPS (Apple GPU); use --device cpu")
        return torch.device("mps")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            build = "a CPU-only PyTorch build" if torch.version.cuda is None else "no CUDA device visible"
            raise BadInputError(f"--device {name}: CUDA is not available ({build}, torch {torch.__version__}); "
                                "use --device cpu or auto")
        count = torch.cuda.device_count()
        if name == "cuda":
            index = local_rank or 0
        else:
            try:
                index = int(name.split(":", 1)[1])
            except ValueError:
                raise BadInputError(f"--device {name}: expected cuda:N with N an integer") from None
            if local_rank is not None and index != local_rank:
                raise BadInputError(f"--device {name}: under torchrun each process uses cuda:LOCAL_RANK "
                                    f"(this one cuda:{local_rank}); pass --device cuda")
        if not 0 <= index < count:
            raise BadInputError(f"--device cuda:{index}: this machine has {count} CUDA device(s), 0..{count - 1}")
        return torch.device("cuda", index)
    raise BadInputError(f"--device: expected one of {', '.join(DEVICES)}, got {name!r}")


def describe_device(device: torch.device) -> str:
    """``cpu (8 threads)``, ``cuda:0 (NVIDIA H100 80GB HBM3)``: what the run folder records."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return str(device)


@dataclass(frozen=True)
class Precision:
    """Mixed precision for one device: an autocast context and, for fp16, a gradient scaler."""

    name: str
    device: torch.device

    def __post_init__(self) -> None:
        if self.name not in PRECISIONS:
            raise BadInputError(f"--precision: expected one of {', '.join(PRECISIONS)}, got {self.name!r}")
        if self.name == "fp16" and self.device.type == "cpu":
            raise BadInputError("--precision fp16 needs a CUDA or MPS device (oneDNN has no fp16 LSTM on CPU); "
                                "use --precision bf16 on CPU")
        if self.name == "bf16" and self.device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise BadInputError(f"--precision bf16: {describe_device(self.device)} has no bf16 support; "
                                "use --precision fp16")

    def autocast(self):
        """The context the forward pass and loss run in (a no-op for fp32)."""
        if self.name == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=_DTYPES[self.name])

    def grad_scaler(self) -> torch.amp.GradScaler:
        """Enabled for fp16 only (bf16 has fp32's range and needs no loss scaling)."""
        return torch.amp.GradScaler(self.device.type, enabled=self.name == "fp16")
