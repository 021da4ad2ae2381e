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

from edgernn import __version__
from edgernn.errors import BadInputError, EdgeRnnError, ModelFileError
from edgernn.manifest_schema import MANIFEST_VERSION, check_manifest, check_plain_name, format_major
from edgernn.spec import SPEC_VERSION, ModelSpec

MANIFEST_NAME = "manifest.json"
MAX_MANIFEST_BYTES = 256 << 20  # a manifest holds a probe and reports, not data: far below this


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
    precision: str  # "fp32" | "fp16" | "int8-weights" | "int8-dynamic" | "int8-static" (edgernn.precisions)
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
    not_written: tuple[dict[str, str], ...] = ()  # --best-effort: [{variant, reason}] asked for but not made
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
            **({"not_written": list(self.not_written)} if self.not_written else {}),
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
            not_written=tuple(dict(e) for e in d.get("not_written", ())),
            refused=tuple(dict(r) for r in d.get("refused", ())),
            created=d.get("created", ""),
            manifest_version=format_major(d.get("manifest_version", MANIFEST_VERSION), "manifest_version"),
        )


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_output_path(path: Path) -> Path:
    """Make sure a file can be written at ``path`` (its folder is created): one BadInputError line if not."""
    path = Path(path)
    if path.is_dir():
        raise BadInputError(f"{path}: is a folder; give a file path for the output")
    for folder in path.parents:
        if folder.exists():
            if not folder.is_dir():
                raise BadInputError(f"{path}: cannot write here, {folder} is a file, not a folder")
            break
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise BadInputError(f"{path}: cannot create its folder ({e.strerror or e})") from None
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise BadInputError(f"{path}: cannot write here, permission denied on {path.parent}")
    return path


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, then rename over ``path``."""
    path = check_output_path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise BadInputError(f"{path}: cannot write here ({e.strerror or e}); choose a writable folder") from None
    try:
        os.fchmod(fd, 0o666 & ~current_umask())  # mkstemp makes 0600; give what open() would
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):  # e.g. the disk is full
            raise BadInputError(f"{path}: could not write it ({e.strerror or e}); nothing was written") from None
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
    """Read and check ``manifest.json``: its schema, its format version, and that every variant file is a
    plain name that stays inside the bundle folder. Nothing a variant names is opened here."""
    bundle_dir = Path(bundle_dir)
    path = bundle_dir / MANIFEST_NAME
    if not bundle_dir.exists():
        raise missing_bundle(bundle_dir)
    if not path.is_file():
        raise ModelFileError(
            f"{bundle_dir}: not a bundle (expected {MANIFEST_NAME} inside); "
            "pass a bundle made by `edgernn export`, or a .onnx file"
        )
    inside(bundle_dir, path, MANIFEST_NAME)
    try:
        if path.stat().st_size > MAX_MANIFEST_BYTES:
            raise ModelFileError(f"{path}: manifest of {path.stat().st_size} bytes is far too large to be one")
        d = json.loads(path.read_bytes().decode("utf-8"))
    except PermissionError:
        raise ModelFileError(f"{path}: permission denied; make the bundle readable") from None
    except OSError as e:
        raise ModelFileError(f"{path}: cannot read the manifest ({e.strerror or e})") from None
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError, ValueError) as e:
        raise ModelFileError(f"{path}: manifest is damaged ({type(e).__name__}: {str(e)[:120]})") from None
    try:
        check_manifest(d, spec_version=SPEC_VERSION, runtime_version=__version__)
    except ModelFileError as e:
        raise ModelFileError(f"{path}: {e}") from None
    try:
        manifest = Manifest.from_dict(d)
    except (EdgeRnnError, KeyError, TypeError, ValueError) as e:  # e.g. the spec's own checks
        raise ModelFileError(f"{path}: manifest is damaged ({type(e).__name__}: {e})") from None
    for v in manifest.variants:
        inside(bundle_dir, bundle_dir / v.file, v.file)
    return manifest


def missing_bundle(path: Path) -> ModelFileError:
    """No bundle at ``path``: say so, and where the old one is if an export was killed while replacing it."""
    old = Path(path).with_name(f".{Path(path).name}.old")
    hint = (f"; {old.name} beside it holds the bundle an interrupted export was replacing (the next export to "
            "this path restores it, or move it back yourself)") if old.is_dir() else ""
    return ModelFileError(f"{path}: no such bundle directory or model file{hint}")


def inside(bundle_dir: Path, path: Path, name: str) -> Path:
    """``path`` (bundle_dir / a plain name), refused when a symlink takes it outside the bundle folder."""
    check_plain_name(name, "file")
    if path.is_symlink():
        root, target = Path(os.path.realpath(bundle_dir)), Path(os.path.realpath(path))
        if root not in target.parents:
            raise ModelFileError(
                f"{path}: a symlink leading outside the bundle folder (to {target}); "
                "a bundle may not refer to files outside itself"
            )
    return path


def variant_path(bundle_dir: Path, variant: Variant) -> Path:
    """Where a variant's file is: a plain name inside ``bundle_dir``, never outside it."""
    return inside(Path(bundle_dir), Path(bundle_dir) / variant.file, variant.file)


def check_file(bundle_dir: Path, variant: Variant) -> Path:
    """Return the variant's path after checking it exists and matches its recorded sha256."""
    path = variant_path(bundle_dir, variant)
    if not path.is_file():
        raise ModelFileError(f"{path}: listed in the manifest but missing from the bundle")
    try:
        actual = sha256_of(path)
    except PermissionError:
        raise ModelFileError(f"{path}: permission denied; make the bundle's files readable") from None
    except OSError as e:
        raise ModelFileError(f"{path}: cannot read it ({e.strerror or e})") from None
    if actual != variant.sha256:
        raise ModelFileError(
            f"{path}: checksum mismatch (manifest sha256 {variant.sha256[:12]}…, file {actual[:12]}…); "
            "the file was changed or damaged: export the bundle again"
        )
    return path
