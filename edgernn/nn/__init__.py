"""PyTorch side: models built from a ModelSpec, and the training loop. Imports torch."""

from edgernn.nn.model import RnnModel, build_model, load_torch_model

__all__ = ["RnnModel", "build_model", "load_torch_model"]
