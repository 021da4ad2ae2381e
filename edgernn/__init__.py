"""edgernn: LSTM/GRU sequence models from PyTorch to edge devices.

Importing this package is cheap and never imports torch or tensorflow: the device runtime
(`edgernn.runtime`) needs only numpy and onnxruntime.

>>> import edgernn
>>> model = edgernn.load("models/sum-lstm/bundle")       # a bundle folder, or a .onnx / .tflite file
>>> model.predict(windows).values                         # (N, T, F) in data units → (N, O)
>>> stream = model.sliding()                              # one frame at a time, as `run --stream`
>>> stream.push(frame)                                    # (prediction, frames it is based on) or None

``edgernn.export(module, example_input, out=...)`` exports your own nn.Module; ``edgernn.export``
is imported on first use.
"""

__version__ = "0.1.0"

_RUNTIME = ("load", "Model", "Prediction")


def __getattr__(name):
    import importlib

    if name == "export":  # lazy: the export package imports onnx, and torch when called
        return importlib.import_module("edgernn.export")
    if name in _RUNTIME:  # lazy: keeps `import edgernn` free of numpy until asked
        return getattr(importlib.import_module("edgernn.runtime"), name)
    raise AttributeError(f"module 'edgernn' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), "export", *_RUNTIME])
