"""The `edgernn` group, its error handling (one line, exit 2 for bad input, 1 for a failed check), and
the output helpers the commands share. Commands live in ``commands_*`` and register on ``cli``."""

from __future__ import annotations

import os
import sys

import click

from edgernn import __version__
from edgernn.errors import EdgeRnnError


DEBUG_ENV = "EDGERNN_DEBUG"
BUG_REPORT = "please report it to the edgernn maintainers (issue tracker) with the command you ran"


def debug_wanted(ctx: click.Context | None = None) -> bool:
    root = ctx.find_root() if ctx is not None else None
    flag = bool(root is not None and (root.params or {}).get("debug"))
    return flag or os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


# `edgernn --help` lists the commands in the order a model goes through them.
WORKFLOW = ("train", "export", "validate", "evaluate", "compare", "run", "bench", "verify", "info")


class EdgeRnnGroup(click.Group):
    """Turns an EdgeRnnError into one line on stderr and its exit code; never a traceback.

    Anything else that escapes a command is a bug in edgernn: one line naming it and where to report it,
    exit 1; ``--debug`` (or EDGERNN_DEBUG=1) shows the traceback instead.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:  # the group's own options, e.g. `edgernn --bogus`: one line too
            return super().parse_args(ctx, args)
        except click.UsageError as e:
            if type(e).__name__ == "NoArgsIsHelpError":  # bare `edgernn`: click shows the help, as it should
                raise
            click.echo(f"error: {_usage_line(e, ctx)}", err=True)
            ctx.exit(e.exit_code)

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = super().list_commands(ctx)
        return [n for n in WORKFLOW if n in names] + [n for n in names if n not in WORKFLOW]

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except EdgeRnnError as e:
            if debug_wanted(ctx):
                raise
            for line in str(e).splitlines() or [""]:  # one line; one per package for missing dependencies
                click.echo(f"error: {line}", err=True)
            ctx.exit(e.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)
        except click.UsageError as e:  # a bad option value: one line, like every other input error
            click.echo(f"error: {_usage_line(e, ctx)}", err=True)
            ctx.exit(e.exit_code)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except BrokenPipeError:  # the reader of our output went away (`| head`): stop quietly
            _silence_stdout()
            ctx.exit(141 if os.name == "posix" else 1)
        except Exception as e:
            if debug_wanted(ctx):
                raise
            where = _where(e)
            message = " ".join(str(e).split())[:200]
            click.echo(f"internal error (a bug in edgernn): {type(e).__name__}"
                       f"{': ' + message if message else ''}{' at ' + where if where else ''}; "
                       f"{BUG_REPORT} (rerun with --debug or {DEBUG_ENV}=1 for the traceback)", err=True)
            ctx.exit(1)


def _usage_line(e: click.UsageError, ctx: click.Context) -> str:
    """``--threads must be at least 1, got 0`` for our bounded numbers; click's own wording otherwise."""
    param = getattr(e, "param", None)
    if isinstance(e, click.BadParameter) and param is not None and e.message.startswith("must "):
        return f"{param.opts[0] if getattr(param, 'opts', None) else param.name} {e.message}"
    where = e.ctx.command_path if e.ctx is not None else ctx.command_path
    return f"{' '.join(e.format_message().split())} (see '{where} --help')"


def _where(e: BaseException) -> str:
    """The innermost frame of the traceback inside edgernn, as ``module.py:line``."""
    import traceback

    frames = [f for f in traceback.extract_tb(e.__traceback__) if "edgernn" in f.filename]
    return f"{os.path.basename(frames[-1].filename)}:{frames[-1].lineno}" if frames else ""


def _silence_stdout() -> None:
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):
        pass


@click.group(cls=EdgeRnnGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="edgernn")
@click.option("--debug", is_flag=True, help=f"show the full traceback of an internal error (or set {DEBUG_ENV}=1)")
def cli(debug: bool) -> None:
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
