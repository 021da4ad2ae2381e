"""The `edgernn` command line. Commands parse options, call the library, and print.

Heavy modules (torch, onnx) are imported inside the commands that need them, so `edgernn --help`,
`edgernn run`, `bench` and `verify` start without them.
"""

from __future__ import annotations

import sys

import click

from edgernn import __version__
from edgernn.errors import EdgeRnnError


# `edgernn --help` lists the commands in the order a model goes through them.
WORKFLOW = ("train", "export", "validate", "evaluate", "compare", "run", "bench", "verify", "info")


class EdgeRnnGroup(click.Group):
    """Turns an EdgeRnnError into one line on stderr and its exit code; never a traceback."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = super().list_commands(ctx)
        return [n for n in WORKFLOW if n in names] + [n for n in names if n not in WORKFLOW]

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except EdgeRnnError as e:
            for line in str(e).splitlines() or [""]:  # one line; one per package for missing dependencies
                click.echo(f"error: {line}", err=True)
            ctx.exit(e.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)


@click.group(cls=EdgeRnnGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="edgernn")
def cli() -> None:
    """Take LSTM/GRU sequence models from PyTorch to edge devices.

    \b
    Workstation:  train → export → validate → evaluate → compare
    Device:       run, bench, verify, info   (numpy + onnxruntime only, no torch)
    Completion:   eval "$(_EDGERNN_COMPLETE=bash_source edgernn)"   (zsh_source, fish_source)
    """


def main() -> None:
    cli(prog_name="edgernn")


def emit_json(payload) -> None:
    import json

    click.echo(json.dumps(payload, indent=2, default=_json_default))


def _json_default(o):
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def fmt(v: float) -> str:
    """Numbers for tables: 4 significant digits, scientific when small."""
    if v != v:  # NaN
        return "nan"
    if v == 0 or 1e-3 <= abs(v) < 1e5:
        return f"{v:.4g}"
    return f"{v:.2e}"


def stderr_is_tty() -> bool:
    return sys.stderr.isatty()


# Registering the commands: each module adds its own to `cli`. They import nothing heavy at import time.
from edgernn.cli import commands_bench, commands_device, commands_model, commands_quality, commands_runtime  # noqa: E402,F401
