"""What each command needs beyond the device runtime, checked before any work starts.

A device installs ``pip install edgernn`` (numpy, onnxruntime, click). The workstation commands
need more; rather than fail half-way with a traceback (or after the work, losing the result), a
command calls ``require(...)`` first and gets one line per missing package naming what to install.
Packages are looked up (``importlib.util.find_spec``), not imported: the check costs nothing.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable

from edgernn.errors import MissingDependenciesError

CPU_TORCH = "https://download.pytorch.org/whl/cpu"

# import name → (package name a user knows, how to install it)
PACKAGES: dict[str, tuple[str, str]] = {
    "torch": ("torch", f"pip install 'edgernn[export]' (no GPU: add --extra-index-url {CPU_TORCH})"),
    "onnx": ("onnx", "pip install 'edgernn[export]'"),
    "safetensors": ("safetensors", "pip install 'edgernn[export]'"),
    "tqdm": ("tqdm", "pip install 'edgernn[export]'"),
    "matplotlib": ("matplotlib", "pip install matplotlib (or 'edgernn[export]')"),
    "ai_edge_quantizer": ("ai-edge-quantizer", "pip install 'edgernn[tflite]'"),
    # writing .tflite files: the whole TFLite tool chain
    "ai_edge_litert": ("ai-edge-litert", "pip install 'edgernn[tflite]'"),
    # running .tflite files: either interpreter will do
    "ai_edge_litert|tflite_runtime": ("ai-edge-litert (or tflite-runtime)",
                                      "pip install 'edgernn[litert]' (just ai-edge-litert)"),
}
TFLITE_RUNTIME = "ai_edge_litert|tflite_runtime"


def installed(module: str) -> bool:
    """Whether ``module`` (or, for ``"a|b"``, either of them) can be imported, without importing it."""
    for name in module.split("|"):
        try:
            if importlib.util.find_spec(name) is not None:
                return True
        except (ImportError, ValueError):  # a parent package missing, or a broken entry on sys.path
            continue
    return False


def missing(modules: Iterable[str]) -> list[str]:
    """The modules of ``modules`` that are not installed, in order, without repeats."""
    return [m for m in dict.fromkeys(modules) if not installed(m)]


def require(command: str, modules: Iterable[str], purpose: dict[str, str] | None = None) -> None:
    """Raise one error listing every missing module of ``modules``: one line each, saying what to install.

    ``purpose`` names why a module is needed when it is not obvious (``{"matplotlib": "--plot"}``).
    """
    purpose = purpose or {}
    lines = []
    for module in missing(modules):
        package, fix = PACKAGES.get(module, (module, f"pip install {module}"))
        why = f" (for {purpose[module]})" if module in purpose else ""
        lines.append(f"edgernn {command} needs {package}{why}, which is not installed: {fix}")
    if lines:
        raise MissingDependenciesError(lines)


# What each workstation command always needs.
TRAIN = ("torch", "safetensors", "matplotlib", "tqdm")
EXPORT = ("onnx", "safetensors")
VALIDATE = ("onnx",)
CHECKPOINT = ("torch", "safetensors")  # --checkpoint: PyTorch on the trained weights
COMPARE = ("torch", "safetensors", "onnx", "matplotlib", "tqdm")


def export_needs(formats: Iterable[str], quantize: Iterable[str], checkpoint: bool = True) -> list[str]:
    """``edgernn export``: ONNX always (and safetensors to read a checkpoint); the TFLite tool chain for
    tflite, and tqdm for int8 calibration."""
    formats, quantize = tuple(formats), tuple(quantize)
    needs = list(EXPORT) if checkpoint else ["onnx"]
    if any(q.startswith("int8") for q in quantize):
        needs.append("tqdm")
    if "tflite" in formats:
        needs.append("ai_edge_litert")
        if quantize:
            needs.append("ai_edge_quantizer")
    return needs
