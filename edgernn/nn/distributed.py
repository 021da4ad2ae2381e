"""Data-parallel training under ``torchrun``: one process per device, PyTorch's own engine.

``torchrun --nproc-per-node N -m edgernn train ...`` sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK`` and the rendezvous address in each process's environment. ``distributed_context``
reads them, starts the process group (gloo on CPU, NCCL on CUDA) and always ends it, also on an
error or Ctrl-C, so no rank is left waiting. Outside torchrun it is a world of one and every
collective below is a no-op.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist

from edgernn.errors import BadInputError


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int | None = None

    @property
    def is_main(self) -> bool:
        """Only this process writes files and prints."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.size > 1

    def sum(self, values: list[float], device: torch.device) -> list[float]:
        """Element-wise sum of ``values`` over all ranks (float64)."""
        if not self.active:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t.tolist()

    def decide(self, flag: bool, device: torch.device) -> bool:
        """Rank 0's ``flag``, the same on every rank (e.g. "stop early now")."""
        if not self.active:
            return flag
        t = torch.tensor([1 if flag else 0], dtype=torch.int32, device=device)
        dist.broadcast(t, src=0)
        return bool(t.item())

    def barrier(self) -> None:
        if self.active:
            dist.barrier()


def world_from_env() -> World:
    """The world torchrun describes in the environment, or a world of one."""
    if "WORLD_SIZE" not in os.environ or "RANK" not in os.environ:
        return World()
    try:
        size, rank = int(os.environ["WORLD_SIZE"]), int(os.environ["RANK"])
        local = int(os.environ.get("LOCAL_RANK", rank))
    except ValueError:
        raise BadInputError("RANK, WORLD_SIZE and LOCAL_RANK must be integers (as torchrun sets them)") from None
    return World(rank=rank, size=size, local_rank=local) if size > 1 else World()


@contextmanager
def distributed_context(device_type_hint: str) -> Iterator[World]:
    """Join the torchrun process group for the duration of training, then leave it.

    ``device_type_hint`` is "cuda" when the processes train on GPUs (NCCL), else gloo is used.
    """
    world = world_from_env()
    if not world.active:
        yield world
        return
    if not dist.is_available():
        raise BadInputError("this PyTorch build has no torch.distributed; run without torchrun")
    backend = "nccl" if device_type_hint == "cuda" else "gloo"
    started_here = not dist.is_initialized()
    if started_here:
        if backend == "nccl":
            torch.cuda.set_device(world.local_rank or 0)
        dist.init_process_group(backend=backend)
    # torchrun stops the other ranks with SIGTERM when one fails: leave the group on the way out, too.
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        yield world
    finally:
        signal.signal(signal.SIGTERM, previous)
        if started_here and dist.is_initialized():
            dist.destroy_process_group()


def _exit_on_sigterm(signum, frame) -> None:
    raise SystemExit(128 + signum)


def wants_cuda(device_name: str) -> bool:
    """Whether ``--device`` will resolve to CUDA (decides NCCL vs gloo before the group exists)."""
    name = (device_name or "auto").lower()
    return name.startswith("cuda") or (name == "auto" and torch.cuda.is_available())
