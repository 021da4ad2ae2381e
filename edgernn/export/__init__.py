"""Export: a ModelSpec and its weights → a bundle folder of validated model files."""

from edgernn.export.bundle_writer import ExportResult, export_bundle, export_checkpoint

__all__ = ["ExportResult", "export_bundle", "export_checkpoint"]
