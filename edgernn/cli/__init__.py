"""The `edgernn` command line. Commands parse options, call the library, and print.

Heavy modules (torch, onnx) are imported inside the commands that need them, so `edgernn --help`,
`edgernn run`, `bench` and `verify` start without them. ``app`` holds the group and the shared output
helpers; each ``commands_*`` module registers its commands on it (imports point one way: app ← commands ← here).
"""

from edgernn.cli import commands_bench, commands_device, commands_model, commands_quality, commands_runtime  # noqa: F401
from edgernn.cli.app import DEBUG_ENV, cli, debug_wanted, emit_json, fmt, main, stderr_is_tty

__all__ = ["DEBUG_ENV", "cli", "debug_wanted", "emit_json", "fmt", "main", "stderr_is_tty"]
