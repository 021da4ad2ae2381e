"""The device runtime: numpy + onnxruntime only. Never imports torch or tensorflow."""

from edgernn.runtime.model import Model, Prediction, load
from edgernn.runtime.stream import SlidingWindowSession, StreamSession

__all__ = ["Model", "Prediction", "SlidingWindowSession", "StreamSession", "load"]
