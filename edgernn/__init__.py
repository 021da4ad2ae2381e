"""edgernn: LSTM/GRU sequence models from PyTorch to edge devices.

Importing this package is cheap and never imports torch or tensorflow: the device runtime
(`edgernn.runtime`) needs only numpy and onnxruntime. ``edgernn.export(module, example_input,
out=...)`` exports your own nn.Module; ``edgernn.export`` is imported on first use.
"""

__version__ = "0.1.0"


def __getattr__(name):
    if name == "export":  # lazy: the export package imports onnx, and torch when called
        import importlib

        return importlib.import_module("edgernn.export")
    raise AttributeError(f"module 'edgernn' has no attribute {name!r}")
