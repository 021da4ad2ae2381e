"""Prove `--target-runtime`: export bundles for an older onnxruntime and `edgernn verify` them under it.

Run from the workstation venv (it exports with torch + onnx), e.g.

    python tools/check_old_onnxruntime.py                     # onnxruntime 1.16.3
    python tools/check_old_onnxruntime.py --version 1.17.3

It makes its own venv (WORK/venv-ort-VERSION) with onnxruntime==VERSION, numpy<2 and click, and
edgernn installed there without dependencies (the runtime-only package: no torch, no onnx); trains
a small LSTM and a small GRU here, exports each with ``--target-runtime onnxruntime==X.Y`` (and
every precision ``edgernn export --quantize`` offers), then in the old venv:

- runs ``edgernn verify --json`` on each bundle (checksums + probe self-test of every variant);
- also exports and verifies each model at the highest opset edgernn writes for that release
  (``--opset``), which catches kernels a release lacks at its own top opset (1.15: Reshape-19);
- checks the compatibility-table row edgernn holds for that release: a model at the row's IR
  version and opset loads, one IR version or one opset above does not;
- for 1.16, checks edgernn's record of its contrib ops against the runtime's schema registry.

Prints the figures and exits 1 if anything failed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def sh(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], check=True, text=True, capture_output=True, **kw)


def make_env(work: Path, version: str) -> Path:
    env = work / f"venv-ort-{version}"
    py = env / "bin" / "python"
    if not py.exists():
        sh([sys.executable, "-m", "venv", env])
    sh([py, "-m", "pip", "install", "-q", f"onnxruntime=={version}", "numpy<2", "click>=8.1"])
    sh([py, "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", REPO])  # a copy, as a device gets it
    return py


def export_bundles(work: Path, release: str, limit_opset: int) -> dict[str, Path]:
    edgernn = [sys.executable, "-m", "edgernn"]
    help_text = sh([*edgernn, "export", "--help"]).stdout
    offered = "fp16,int8-weights,int8-dynamic,int8-static" if "int8-weights" in help_text else "fp16,int8-dynamic,int8-static"
    quantize = ["--quantize", offered] if "--quantize" in help_text else []
    if "--best-effort" in help_text:  # a GRU has no onnxruntime int8-dynamic: listed in the manifest, not fatal
        quantize.append("--best-effort")
    bundles = {}
    for name, train_args in {
        "lstm": ["--task", "sum", "--cell", "lstm", "--layers", "2", "--hidden", "12"],
        "gru": ["--task", "bands", "--cell", "gru", "--hidden", "10"],
    }.items():
        run, bundle = work / f"run-{name}", work / f"bundle-{name}-ort{release}"
        sh([*edgernn, "train", *train_args, "--epochs", "3", "--samples", "400", "--out", run, "--quiet"])
        sh([*edgernn, "export", run, "--out", bundle, "--target-runtime", f"onnxruntime=={release}", *quantize])
        bundles[name] = bundle
        at_limit = work / f"bundle-{name}-ort{release}-opset{limit_opset}"  # the highest opset edgernn writes for it
        sh([*edgernn, "export", run, "--out", at_limit, "--target-runtime", f"onnxruntime=={release}",
            "--opset", str(limit_opset), *quantize])
        bundles[f"{name} at opset {limit_opset}"] = at_limit
    return bundles


TABLE_PROBE = """
import sys, onnxruntime as ort
for path in sys.argv[1:]:
    try:
        ort.InferenceSession(path, providers=["CPUExecutionProvider"]); print(path, "loads")
    except Exception as e:
        print(path, "refused:", str(e).strip().splitlines()[0][:160])
"""

CONTRIB_PROBE = """
from onnxruntime.capi import onnxruntime_pybind11_state as C
print(" ".join(sorted({s.name for s in C.get_all_operator_schema() if s.domain == "com.microsoft"})))
"""


def table_models(folder: Path, ir: int, opset: int) -> dict[str, Path]:
    """Tiny Relu models (Relu's last new version is opset 14, so every runtime has its kernel) at the
    row's limits and one step beyond each: what the loader accepts, apart from kernels."""
    import onnx
    from onnx import TensorProto, helper

    paths = {}
    for label, (ir_v, ops) in {"at limits": (ir, opset), "IR + 1": (ir + 1, opset), "opset + 1": (ir, opset + 1)}.items():
        graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "probe",
                                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", ops)])
        model.ir_version = ir_v
        path = folder / f"ir{ir_v}_opset{ops}.onnx"
        onnx.save(model, str(path))
        paths[label] = path
    return paths


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", default="1.16.3", help="onnxruntime version to install (default 1.16.3)")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "edgernn-old-ort")
    args = parser.parse_args()
    from edgernn.export.targets import CONTRIB_OPS_SINCE_1_16, parse_target

    release = ".".join(args.version.split(".")[:2])
    target = parse_target(f"onnxruntime=={release}")
    args.work.mkdir(parents=True, exist_ok=True)
    ok = True

    started = time.perf_counter()
    py = make_env(args.work, args.version)
    versions = sh([py, "-c", "import onnxruntime, numpy, sys; print(onnxruntime.__version__, numpy.__version__, sys.version.split()[0])"]).stdout.split()
    heavy = sh([py, "-c", "import importlib.util as u; print([m for m in ('torch', 'onnx', 'tensorflow') if u.find_spec(m)])"]).stdout.strip()
    print(f"old env: onnxruntime {versions[0]}, numpy {versions[1]}, python {versions[2]}; heavy packages present: {heavy} "
          f"({time.perf_counter() - started:.1f} s)")

    started = time.perf_counter()
    try:  # the old environment is set up: from here on, a failing edgernn command is a failed check, not set-up
        bundles = export_bundles(args.work, release, target.limits.usable_opset)
    except subprocess.CalledProcessError as e:
        print(f"edgernn failed on the host: {' '.join(map(str, e.cmd))} (exit {e.returncode}): {(e.stderr or '').strip()}")
        print("old-runtime check: FAILED")
        return 1
    print(f"exported {', '.join(str(b) for b in bundles.values())} for {target.label} ({time.perf_counter() - started:.1f} s)")

    for name, bundle in bundles.items():
        manifest = json.loads((bundle / "manifest.json").read_text())
        t = manifest.get("target", {})
        print(f"\n{name}: written at IR version {t.get('ir_version')}, opset {t.get('opset')}; refused: "
              + ("; ".join(f"{r['variant']} ({r['reason']})" for r in t.get("refused", [])) or "none"))
        done = subprocess.run([py, "-m", "edgernn", "verify", bundle, "--json"], text=True, capture_output=True)
        if done.returncode not in (0, 1):
            print(f"  verify exited {done.returncode}: {done.stderr.strip()}")
            ok = False
            continue
        report = json.loads(done.stdout)
        for v in report["variants"]:
            figures = "  ".join(f"{o['output']} {o['max_abs']:.3g}" for o in v["outputs"])
            print(f"  {v['status']:<7} {v['variant']:<26} max abs vs stored reference: {figures}  {v['reason']}")
        print(f"  verify under onnxruntime {report['runtime'].get('onnxruntime')}: {'passed' if report['passed'] else 'FAILED'}")
        ok = ok and report["passed"] and done.returncode == 0

    with tempfile.TemporaryDirectory() as tmp:
        lim = target.limits
        models = table_models(Path(tmp), lim.ir_version, lim.opset)
        lines = sh([py, "-c", TABLE_PROBE, *models.values()]).stdout.splitlines()
        results = dict(zip(models, lines))
        print(f"\ntable row {lim.release[0]}.{lim.release[1]} (IR {lim.ir_version}, opset {lim.opset}) under onnxruntime {versions[0]}:")
        for label, line in results.items():
            print(f"  {label:<10} {line.split(' ', 1)[1]}")
        # edgernn relies on "at limits loads"; a step beyond that also loads only means the row is conservative
        row_ok = results["at limits"].endswith("loads")
        loose = [k for k in ("IR + 1", "opset + 1") if results[k].endswith("loads")]
        print(f"  table row: {'confirmed' if row_ok else 'NOT confirmed'}"
              + (f" (conservative: {', '.join(loose)} also loads)" if row_ok and loose else ""))
        ok = ok and row_ok

    if release == "1.16":
        contrib = set(sh([py, "-c", CONTRIB_PROBE]).stdout.split())
        same = contrib == set(CONTRIB_OPS_SINCE_1_16)
        print(f"contrib ops record for 1.16: {'matches' if same else 'DIFFERS'} ({len(contrib)} ops in the runtime)")
        ok = ok and same

    print("\nold-runtime check: " + ("passed" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
