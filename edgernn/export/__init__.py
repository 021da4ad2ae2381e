"""Export: a ModelSpec and its weights → a bundle folder of validated model files.

Your own ``nn.Module``: ``edgernn.export.export_module(module, example_input, out=...)``, also
reachable as ``edgernn.export(module, example_input, out=...)`` (this package is callable).
"""

import sys
import types

from edgernn.export.bundle_writer import ExportResult, export_bundle, export_checkpoint

__all__ = ["ExportResult", "export_bundle", "export_checkpoint", "export_module"]


def export_module(module, example_input, out, **options):
    """Export the user's own module (see ``edgernn.export.from_module.export_module``); imports torch."""
    from edgernn.export.from_module import export_module as _export_module

    return _export_module(module, example_input, out, **options)


class _CallablePackage(types.ModuleType):
    """``edgernn.export(module, example_input, out=...)`` is ``export_module``."""

    def __call__(self, module, example_input, out, **options):
        return export_module(module, example_input, out, **options)


sys.modules[__name__].__class__ = _CallablePackage
