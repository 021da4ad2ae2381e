"""The device runtime: numpy + onnxruntime only. Never imports torch or tensorflow."""

from edgernn.runtime.model import Model, Prediction, load

__all__ = ["Model", "Prediction", "load"]
