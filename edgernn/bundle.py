"""The bundle on disk: ``manifest.json`` plus one file per model variant.

Standard library only: the device runtime reads bundles with this module. Writing is atomic
(a temporary name, then a rename), so a crash never leaves a half-written file behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from edgernn.errors import ModelFileError
from edgernn.spec import ModelSpec

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1


@dataclass(frozen=True)
class TensorInfo:
    """A graph input or output: its name, its shape (ints or axis names) and what it holds."""

    name: str
    shape: tuple[int | str, ...]
    dtype: str = "float32"
    doc: str = ""

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TensorInfo":
        return cls(d["name"], tuple(d["shape"]), d.get("dtype", "float32"), d.get("doc", ""))


@dataclass(frozen=True)
class Variant:
    """One model file of the bundle."""

    name: str  # e.g. "onnx-window-fp32"
    file: str
    format: str  # "onnx" | "tflite"
    graph: str  # "window" | "step"
    precision: str  # "fp32" | "fp16" | "int8-dynamic" | "int8-static"
    size: int
    sha256: str
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    opset: int | None = None
    ir_version: int | None = None
    requires: tuple[str, ...] = ()  # e.g. ("com.microsoft",) for contrib ops
    state: dict[str, Any] = field(default_factory=dict)  # step graphs: state tensors and their init
    precision_report: tuple[dict[str, Any], ...] = ()
    quantization: dict[str, Any] = field(default_factory=dict)  # how the precision was reached: tool, compute, calibration
    parity: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["inputs"] = [asdict(t) for t in self.inputs]
        d["outputs"] = [asdict(t) for t in self.outputs]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Variant":
        known = {f.name for f in fields(cls)}
        d = {k: v for k, v in d.items() if k in known}
        d["inputs"] = tuple(TensorInfo.from_dict(t) for t in d.get("inputs", ()))
        d["outputs"] = tuple(TensorInfo.from_dict(t) for t in d.get("outputs", ()))
        d["requires"] = tuple(d.get("requires", ()))
        d["precision_report"] = tuple(d.get("precision_report", ()))
        return cls(**d)


@dataclass(frozen=True)
class Manifest:
    spec: ModelSpec
    variants: tuple[Variant, ...]
    versions: dict[str, str] = field(default_factory=dict)
    streaming: dict[str, Any] = field(default_factory=dict)  # {"supported": bool, "reason": str}
    probe: dict[str, Any] = field(default_factory=dict)  # stored inputs/outputs for `verify`
    data: dict[str, Any] = field(default_factory=dict)  # the training DataSource, to rebuild its test split
    target: dict[str, Any] = field(default_factory=dict)  # `export --target-runtime`: limits, refused variants
    module: dict[str, Any] = field(default_factory=dict)  # exported from the user's nn.Module: path, input, lint
    refused: tuple[dict[str, Any], ...] = ()  # `export --keep-passing`: variants left out, and why
    created: str = ""
    manifest_version: int = MANIFEST_VERSION

    def variant(self, name: str) -> Variant:
        for v in self.variants:
            if v.name == name:
                return v
        raise ModelFileError(
            f"no variant {name!r} in this bundle; it has: {', '.join(v.name for v in self.variants)}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "manifest_version": self.manifest_version,
            "created": self.created,
            "spec": self.spec.to_dict(),
            "streaming": self.streaming,
            "versions": self.versions,
            "variants": [v.to_dict() for v in self.variants],
            "probe": self.probe,
            "data": self.data,
            "target": self.target,
            **({"module": self.module} if self.module else {}),
            **({"refused": list(self.refused)} if self.refused else {}),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Manifest":
        return cls(
            spec=ModelSpec.from_dict(d["spec"]),
            variants=tuple(Variant.from_dict(v) for v in d["variants"]),
            versions=dict(d.get("versions", {})),
            streaming=dict(d.get("streaming", {})),
            probe=dict(d.get("probe", {})),
            data=dict(d.get("data", {})),
            target=dict(d.get("target", {})),
            module=dict(d.get("module", {})),
            refused=tuple(dict(r) for r in d.get("refused", ())),
            created=d.get("created", ""),
            manifest_version=int(d.get("manifest_version", MANIFEST_VERSION)),
        )


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~current_umask())  # mkstemp makes 0600; give what open() would
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_manifest(bundle_dir: Path, manifest: Manifest) -> Path:
    path = Path(bundle_dir) / MANIFEST_NAME
    atomic_write_text(path, json.dumps(manifest.to_dict(), indent=2) + "\n")
    return path


def read_manifest(bundle_dir: Path) -> Manifest:
    bundle_dir = Path(bundle_dir)
    path = bundle_dir / MANIFEST_NAME
    if not bundle_dir.exists():
        raise ModelFileError(f"{bundle_dir}: no such bundle directory or model file")
    if not path.is_file():
        raise ModelFileError(
            f"{bundle_dir}: not a bundle (expected {MANIFEST_NAME} inside); "
            "pass a bundle made by `edgernn export`, or a .onnx file"
        )
    try:
        return Manifest.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise ModelFileError(f"{path}: manifest is damaged ({type(e).__name__}: {e})") from None


def check_file(bundle_dir: Path, variant: Variant) -> Path:
    """Return the variant's path after checking it exists and matches its recorded sha256."""
    path = Path(bundle_dir) / variant.file
    if not path.is_file():
        raise ModelFileError(f"{path}: listed in the manifest but missing from the bundle")
    actual = sha256_of(path)
    if actual != variant.sha256:
        raise ModelFileError(
            f"{path}: checksum mismatch (manifest sha256 {variant.sha256[:12]}…, file {actual[:12]}…); "
            "the file was changed or damaged: export the bundle again"
        )
    return path
