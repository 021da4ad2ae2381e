"""`edgernn train` options for where and how training runs: device, precision, workers, resume."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from edgernn.errors import BadInputError

# Options a resumed run may change: where and how it runs, and how many epochs it reaches.
RESUME_MAY_CHANGE = {"epochs", "device", "precision", "workers", "threads", "out", "as_json", "quiet", "resume"}

_SCALE_OPTIONS = [
    click.option("--device", default="auto", show_default=True,
                 help="auto (CUDA when present), cpu, cuda, cuda:N or mps"),
    click.option("--precision", type=click.Choice(["fp32", "bf16", "fp16"]), default="fp32", show_default=True,
                 help="autocast precision of the forward pass; weights and checkpoint stay fp32"),
    click.option("--workers", type=click.IntRange(0, 256), default=0, show_default=True, help="DataLoader worker processes"),
    click.option("--mmap", is_flag=True,
                 help="read a .npy/.npz --data file memory-mapped and cut windows per batch (data larger than memory)"),
    click.option("--resume", type=click.Path(path_type=Path),
                 help="continue the run in this folder from its last epoch (resume.pt); --epochs may extend it"),
]


def scale_options(f):
    for option in reversed(_SCALE_OPTIONS):
        f = option(f)
    return f


def apply_scale(source, config, out, *, device, precision, workers, mmap, resume):
    """The (source, config, out, resume state) to train with: the given ones, or the resumed run's."""
    if resume is None:
        if out is None:
            raise click.UsageError("Missing option '--out'.")
        if mmap:
            source = dataclasses.replace(source, mmap=True)
        return source, dataclasses.replace(config, device=device, precision=precision, workers=workers), out, None
    from edgernn.datasource import DataSource
    from edgernn.nn.resume import load_resume
    from edgernn.nn.train import TrainConfig

    ctx = click.get_current_context()
    given = [param.opts[0] for param in ctx.command.params if param.name not in RESUME_MAY_CHANGE
             and ctx.get_parameter_source(param.name) == click.core.ParameterSource.COMMANDLINE]
    if given:
        raise BadInputError(f"--resume continues the run with the options it was started with; drop {', '.join(given)} "
                            "(only --epochs, --device, --precision, --workers and --threads may change)")
    state = load_resume(resume)
    recorded = {f.name for f in dataclasses.fields(TrainConfig)}
    saved = TrainConfig(**{k: v for k, v in state.run.get("config", {}).items() if k in recorded})
    epochs = config.epochs if ctx.get_parameter_source("epochs") == click.core.ParameterSource.COMMANDLINE \
        else saved.epochs
    threads = config.threads if config.threads is not None else saved.threads
    config = dataclasses.replace(saved, epochs=epochs, device=device, precision=precision, workers=workers,
                                 threads=threads)
    return DataSource.from_dict(state.run.get("data", {})), config, out or resume, state
