"""edgernn: LSTM/GRU sequence models from PyTorch to edge devices.

Importing this package is cheap and never imports torch or tensorflow: the device runtime
(`edgernn.runtime`) needs only numpy and onnxruntime.
"""

__version__ = "0.1.0"
