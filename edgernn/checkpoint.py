"""Self-describing checkpoints: a run folder with ``model.safetensors`` and ``checkpoint.json``.

``checkpoint.json`` holds the ModelSpec, the training config, where the data came from (so the
same test split can be rebuilt), the final metrics and the library versions. Weights are
safetensors, read here as numpy arrays: loading a checkpoint never unpickles anything, and export
does not need torch to read one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgernn.bundle import atomic_write_bytes, atomic_write_text
from edgernn.errors import BadInputError, MissingDependencyError, ModelFileError
from edgernn.spec import ModelSpec

WEIGHTS_NAME = "model.safetensors"
CHECKPOINT_NAME = "checkpoint.json"


@dataclass(frozen=True)
class Checkpoint:
    spec: ModelSpec
    weights: dict[str, np.ndarray]
    path: Path
    config: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)


def _safetensors_numpy():
    try:
        from safetensors import numpy as st_numpy
    except ImportError:
        raise MissingDependencyError("safetensors", "export", "reading a checkpoint") from None
    return st_numpy


def save_checkpoint(run_dir: Path, ckpt_info: dict[str, Any], weights: dict[str, np.ndarray]) -> Path:
    """Write weights and ``checkpoint.json`` (which must hold a ``spec`` dict) into ``run_dir``."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    st = _safetensors_numpy()
    blob = st.save({k: np.ascontiguousarray(v, np.float32) for k, v in weights.items()},
                   metadata={"format": "edgernn", "spec": json.dumps(ckpt_info["spec"])})
    atomic_write_bytes(run_dir / WEIGHTS_NAME, blob)
    atomic_write_text(run_dir / CHECKPOINT_NAME, json.dumps(ckpt_info, indent=2) + "\n")
    return run_dir


def load_checkpoint(path: Path) -> Checkpoint:
    """Load a run folder made by ``edgernn train`` (or the folder's ``checkpoint.json``)."""
    path = Path(path)
    run_dir = path.parent if path.name in (CHECKPOINT_NAME, WEIGHTS_NAME) else path
    if not run_dir.exists():
        raise ModelFileError(f"{path}: no such checkpoint folder")
    info_path, weights_path = run_dir / CHECKPOINT_NAME, run_dir / WEIGHTS_NAME
    if not info_path.is_file() or not weights_path.is_file():
        raise ModelFileError(
            f"{run_dir}: not a checkpoint (expected {CHECKPOINT_NAME} and {WEIGHTS_NAME}, "
            "as written by `edgernn train`)"
        )
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
        spec = ModelSpec.from_dict(info["spec"])
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError, KeyError, TypeError, AttributeError) as e:
        raise ModelFileError(f"{info_path}: damaged checkpoint description ({type(e).__name__}: {e})") from None
    except (BadInputError, ValueError) as e:
        raise ModelFileError(f"{info_path}: damaged checkpoint description ({e})") from None
    except PermissionError:
        raise ModelFileError(f"{info_path}: permission denied; make the checkpoint readable") from None
    except OSError as e:
        raise ModelFileError(f"{info_path}: cannot read it ({e.strerror or e})") from None
    try:
        weights = _safetensors_numpy().load_file(str(weights_path))
    except PermissionError:
        raise ModelFileError(f"{weights_path}: permission denied; make the checkpoint readable") from None
    except Exception as e:  # safetensors raises its own error types for bad headers
        message = " ".join(str(e).split())[:200]
        raise ModelFileError(f"{weights_path}: not a readable safetensors file ({message})") from None
    if spec.plain:
        check_weights(spec, weights, weights_path)
    return Checkpoint(
        spec=spec,
        weights=dict(weights),
        path=run_dir,
        config=info.get("config", {}),
        data=info.get("data", {}),
        metrics=info.get("metrics", {}),
        versions=info.get("versions", {}),
    )


def expected_shapes(spec: ModelSpec) -> dict[str, tuple[int, ...]]:
    """The weights a plain model (an nn.LSTM/GRU stack and a Linear head) of ``spec`` has, by name."""
    rows, H = spec.gates * spec.hidden_size, spec.hidden_size  # (G*H) rows: the gates stacked
    shapes: dict[str, tuple[int, ...]] = {}
    for layer in range(spec.num_layers):
        in_size = spec.input_size if layer == 0 else H * spec.num_directions
        for suffix in ("", "_reverse")[: spec.num_directions]:
            shapes[f"rnn.weight_ih_l{layer}{suffix}"] = (rows, in_size)
            shapes[f"rnn.weight_hh_l{layer}{suffix}"] = (rows, H)
            shapes[f"rnn.bias_ih_l{layer}{suffix}"] = (rows,)
            shapes[f"rnn.bias_hh_l{layer}{suffix}"] = (rows,)
    shapes["head.weight"] = (spec.output_size, H * spec.num_directions)
    shapes["head.bias"] = (spec.output_size,)
    return shapes


def check_weights(spec: ModelSpec, weights: dict[str, np.ndarray], where: Path) -> None:
    """Refuse weights that do not fit the spec, naming the first mismatch (at load, not deep in an export)."""
    described = (f"the spec's {spec.num_layers}-layer {'bidirectional ' if spec.bidirectional else ''}{spec.cell} "
                 f"with {spec.input_size} inputs, hidden size {spec.hidden_size}, {spec.output_size} outputs")
    expected = expected_shapes(spec)
    for name, shape in expected.items():
        if name not in weights:
            raise ModelFileError(f"{where}: has no weight {name} of shape {shape}, which {described} needs; "
                                 f"{CHECKPOINT_NAME} and the weights disagree")
        got = tuple(weights[name].shape)
        if got != shape:
            raise ModelFileError(f"{where}: expected {name} of shape {shape} for {described}, got {got}; "
                                 f"{CHECKPOINT_NAME} and the weights disagree")
        if not np.issubdtype(weights[name].dtype, np.floating):  # NaN/inf are the parity check's to report
            raise ModelFileError(f"{where}: weight {name} holds {weights[name].dtype} values, expected floats")
    extra = sorted(set(weights) - set(expected))
    if extra:
        raise ModelFileError(f"{where}: holds weights {described} does not have ({', '.join(extra[:4])}); "
                             f"{CHECKPOINT_NAME} and the weights disagree")
