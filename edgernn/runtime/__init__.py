"""The device runtime: numpy + onnxruntime only. Never imports torch or tensorflow."""

from edgernn.runtime.model import Model, load
from edgernn.runtime.processing import Prediction
from edgernn.runtime.stream import SlidingWindowSession, StreamSession

__all__ = ["Model", "Prediction", "SlidingWindowSession", "StreamSession", "load"]
