"""`edgernn verify`: the on-device check of a bundle, with the device's own runtime.

Three things, each reported in full before the verdict:

1. **Files**: every model file the manifest lists exists and matches its recorded sha256.
2. **Runtime**: the versions this device runs (onnxruntime, numpy, python, CPU architecture),
   next to the versions the bundle was exported with.
3. **Self-test**: the probe stored in the manifest at export time (normalised inputs ``x`` and the
   float64 NumPy reference's outputs ``y``, ``h_n``, ``c_n``) goes through every variant — window
   graphs on the whole probe, step graphs one step at a time — and each output is compared with
   the stored one within the variant's precision tolerance (``edgernn.parity.TOLERANCES``).

Runtime only: numpy, onnxruntime (or a TFLite runtime) and the standard library. No torch,
tensorflow or onnx, so it runs on the device the bundle is meant for.
"""

from __future__ import annotations

import platform
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from edgernn.bundle import Manifest, Variant, read_manifest, sha256_of, variant_path
from edgernn.errors import EdgeRnnError, MissingDependencyError, ModelFileError
from edgernn.parity import TOLERANCES, Tolerance, compare, step_through
from edgernn.runtime import load
from edgernn.runtime.stream import step_fn

# Distributions whose versions a device report shows (read from package metadata: nothing is imported).
RUNTIME_PACKAGES = ("onnxruntime", "numpy", "ai-edge-litert", "tflite-runtime")


@dataclass
class FileCheck:
    variant: str
    file: str
    size: int | None
    expected_sha256: str
    sha256: str | None  # None when the file is missing
    status: str  # "ok" | "mismatch" | "missing"


@dataclass
class OutputCheck:
    output: str  # "y" | "h_n" | "c_n"
    max_abs: float
    max_rel: float
    mean_abs: float
    passed: bool


@dataclass
class VariantCheck:
    variant: str
    format: str
    graph: str
    precision: str
    status: str  # "passed" | "failed" | "skipped"
    mode: str  # "window" (whole probe) | "stream" (stepped through the probe)
    tolerance: dict[str, float] | None = None
    outputs: list[OutputCheck] = field(default_factory=list)
    reason: str = ""  # why it failed or was skipped, in a sentence

    @property
    def max_abs(self) -> float | None:
        return max((o.max_abs for o in self.outputs), default=None)


@dataclass
class VerifyReport:
    bundle: str
    files: list[FileCheck]
    runtime: dict[str, str]
    exported_with: dict[str, str]
    probe: dict[str, int]
    variants: list[VariantCheck]
    target: dict[str, Any] = field(default_factory=dict)

    @property
    def files_ok(self) -> bool:
        return all(f.status == "ok" for f in self.files)

    @property
    def passed(self) -> bool:
        ran = [v for v in self.variants if v.status != "skipped"]
        return self.files_ok and bool(ran) and all(v.status == "passed" for v in ran)

    def to_dict(self) -> dict[str, Any]:
        variants = []
        for v in self.variants:
            d = asdict(v)
            d["max_abs"] = v.max_abs
            variants.append(d)
        return {
            "bundle": self.bundle,
            "passed": self.passed,
            "runtime": self.runtime,
            "exported_with": self.exported_with,
            "target": self.target,
            "files": [asdict(f) for f in self.files],
            "probe": self.probe,
            "variants": variants,
        }


def runtime_versions() -> dict[str, str]:
    """What this device runs: package versions from their metadata, Python, and the CPU architecture."""
    versions = {"python": platform.python_version(), "machine": platform.machine(), "system": platform.system()}
    for package in RUNTIME_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions


def check_files(bundle_dir: Path, manifest: Manifest) -> list[FileCheck]:
    checks = []
    for v in manifest.variants:
        path = variant_path(bundle_dir, v)
        if not path.is_file():
            checks.append(FileCheck(v.name, v.file, None, v.sha256, None, "missing"))
            continue
        try:
            actual = sha256_of(path)
        except OSError:  # e.g. permission denied: reported as unreadable, not run
            checks.append(FileCheck(v.name, v.file, None, v.sha256, None, "unreadable"))
            continue
        status = "ok" if actual == v.sha256 else "mismatch"
        checks.append(FileCheck(v.name, v.file, path.stat().st_size, v.sha256, actual, status))
    return checks


def _probe_arrays(manifest: Manifest) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    probe = manifest.probe
    if not probe or "x" not in probe or not probe.get("outputs"):
        raise ModelFileError("this bundle's manifest holds no probe (stored inputs and expected outputs), "
                             "so it cannot be self-tested; export it again with a current edgernn")
    ids = manifest.spec.vocab_size > 0  # a model with an Embedding in front takes token ids (B, T)
    try:
        with np.errstate(over="ignore", invalid="ignore"):  # judged below: a probe must be finite
            x = np.asarray(probe["x"], np.int64 if ids else np.float32)
            expected = {name: np.asarray(values, np.float64) for name, values in probe["outputs"].items()}
    except (TypeError, ValueError, OverflowError) as e:
        raise ModelFileError(f"the manifest's probe is damaged ({e}); export the bundle again") from None
    if not all(np.isfinite(a).all() for a in (x, *expected.values())):
        raise ModelFileError("the manifest's probe holds NaN or infinite values; export the bundle again")
    if ids and x.ndim == 2 and x.size:
        return x, expected
    F = manifest.spec.input_size
    if x.ndim != 3 or x.shape[2] != F or x.shape[0] == 0 or x.shape[1] == 0:
        raise ModelFileError(f"the manifest's probe inputs should have shape (B, T, {F}), got {x.shape}; "
                             "export the bundle again")
    return x, expected


def _run_variant(bundle_dir: Path, manifest: Manifest, v: Variant, x: np.ndarray, threads: int | None
                 ) -> tuple[str, dict[str, np.ndarray]]:
    """Run one variant on the probe: ``("window" | "stream", outputs comparable with the stored ones)``."""
    model = load(bundle_dir, variant=v.name, threads=threads)
    if v.graph == "window":
        return "window", dict(model.window(x))
    ys, final = step_through(step_fn(model.backend), manifest.spec, x)
    if manifest.spec.head_input == "every_step":  # a head on every step: the window graph's y is all of them
        return "stream", {"y": ys, **final}
    return "stream", {"y": ys[:, -1], **final}  # the head on the last step is the window graph's y


def self_test(bundle_dir: Path, manifest: Manifest, v: Variant, x: np.ndarray, expected: dict[str, np.ndarray],
              *, threads: int | None = None, outputs_sink: dict[str, np.ndarray] | None = None) -> VariantCheck:
    """Run the probe through one variant and compare each output with the stored reference."""
    mode = "window" if v.graph == "window" else "stream"
    check = VariantCheck(v.name, v.format, v.graph, v.precision, "failed", mode)
    tolerance: Tolerance | None = TOLERANCES.get(v.precision)
    if tolerance is None:
        known = ", ".join(sorted(TOLERANCES))
        check.reason = (f"no tolerance is defined for precision {v.precision!r} (this edgernn knows: {known}); "
                        "upgrade edgernn on this device to the version that exported the bundle")
        return check
    scale = getattr(tolerance, "scale", "element")  # "range": rtol of the tensor's max |want| (quantized)
    check.tolerance = {"atol": tolerance.atol, "rtol": tolerance.rtol, "scale": scale}
    try:
        check.mode, got = _run_variant(bundle_dir, manifest, v, x, threads)
    except MissingDependencyError as e:  # e.g. a .tflite variant on a device without a TFLite runtime
        check.status, check.reason = "skipped", str(e)
        return check
    except EdgeRnnError as e:
        check.reason = str(e)
        return check
    except Exception as e:  # a runtime's own error while running: report it, keep checking the others
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        check.reason = f"the runtime failed while running the probe: {first}"
        return check
    if outputs_sink is not None:
        for name, value in got.items():
            outputs_sink[f"{v.name}/{name}"] = np.asarray(value)
    missing = [name for name in ("y",) if name not in got]
    if missing:
        check.reason = f"the variant returned no {', '.join(missing)} output (it returned: {', '.join(got)})"
        return check
    for name, want in expected.items():
        if name not in got:
            continue  # e.g. a variant without state outputs: y is still compared
        max_abs, max_rel, mean_abs, ok = compare(got[name], want, tolerance)
        check.outputs.append(OutputCheck(name, max_abs, max_rel, mean_abs, ok))
    failed = [o.output for o in check.outputs if not o.passed]
    if failed:
        worst = max(check.outputs, key=lambda o: o.max_abs)
        check.reason = (f"{', '.join(failed)} differ from the stored reference beyond the {v.precision} tolerance "
                        f"(max abs {worst.max_abs:.3g}; allowed {tolerance.atol:g} + {tolerance.rtol:g}·"
                        f"{'max |want|' if scale == 'range' else '|want|'})")
    else:
        check.status = "passed"
    return check


def verify_bundle(
    bundle_dir: Path | str,
    *,
    variants: tuple[str, ...] = (),
    threads: int | None = None,
    outputs_sink: dict[str, np.ndarray] | None = None,
) -> VerifyReport:
    """Check a bundle's files, report the runtime, and self-test every variant (or the named ones).

    Raises ``ModelFileError`` (exit 2) for a missing or damaged bundle or an unknown variant name;
    a report whose files or self-tests failed is returned, and ``report.passed`` is False.
    ``outputs_sink``, when given, receives every variant's outputs as ``"{variant}/{output}"`` arrays.
    """
    bundle_dir = Path(bundle_dir)
    if bundle_dir.is_file():
        raise ModelFileError(f"{bundle_dir}: verify needs a bundle folder (made by `edgernn export`), "
                             "which holds the stored probe; a bare model file has none")
    manifest = read_manifest(bundle_dir)
    chosen = [manifest.variant(name) for name in variants] if variants else list(manifest.variants)
    x, expected = _probe_arrays(manifest)
    files = check_files(bundle_dir, manifest)
    bad_files = {f.variant for f in files if f.status != "ok"}
    checks = []
    for v in chosen:
        if v.name in bad_files:
            status = next(f.status for f in files if f.variant == v.name)
            checks.append(VariantCheck(v.name, v.format, v.graph, v.precision, "failed",
                                       "window" if v.graph == "window" else "stream",
                                       reason=f"not run: its file {v.file} is {status}"))
            continue
        checks.append(self_test(bundle_dir, manifest, v, x, expected, threads=threads, outputs_sink=outputs_sink))
    return VerifyReport(
        bundle=str(bundle_dir),
        files=files,
        runtime=runtime_versions(),
        exported_with=dict(manifest.versions),
        probe={"batch": int(x.shape[0]), "length": int(x.shape[1]), "features": int(x.shape[2]) if x.ndim == 3 else 0},
        variants=checks,
        target=dict(getattr(manifest, "target", {}) or {}),
    )
