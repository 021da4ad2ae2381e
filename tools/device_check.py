"""Run bundles on one machine and compare the outputs with another's: host x86 vs an (emulated) device.

Runtime only (numpy + onnxruntime + edgernn's runtime), so the same script runs on the device:

    python tools/device_check.py inputs  B1 B2 ... --out inputs.npz        # on the host: the windows to run
    python tools/device_check.py run     B1 B2 ... --inputs inputs.npz --out host.npz     # host
    python tools/device_check.py run     B1 B2 ... --inputs inputs.npz --out device.npz   # device
    python tools/device_check.py compare B1 B2 ... --host host.npz --device device.npz [--json]

``run`` feeds every window set through every variant of each bundle: window graphs on the whole
windows, step graphs one step at a time from zero state (outputs y of the last step, h_n, c_n).
``compare`` reports, per bundle and variant, the max abs difference between the two machines and
passes when it is within the variant's precision tolerance (edgernn.parity.TOLERANCES).
Exit code 0 when every variant passes, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import numpy as np

from edgernn.bundle import read_manifest
from edgernn.parity import TOLERANCES, compare, probe_inputs, step_through

BATCHES = (1, 4)


def make_inputs(bundles: list[Path]) -> dict[str, np.ndarray]:
    arrays = {}
    for bundle in bundles:
        spec = read_manifest(bundle).spec
        window = spec.window or 20
        for batch in BATCHES:
            for length in sorted({1, window, 3 * window}):
                arrays[f"{bundle.name}/{batch}x{length}"] = probe_inputs(spec, batch, length, seed=2024)
    return arrays


def _chosen(variants, formats: tuple[str, ...]):
    return [v for v in variants if not formats or v.format in formats]


def run_bundles(bundles: list[Path], inputs: dict[str, np.ndarray], threads: int | None,
                formats: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    from edgernn.runtime import load
    from edgernn.runtime.stream import step_fn

    outputs = {}
    for bundle in bundles:
        manifest = read_manifest(bundle)
        cases = {k.split("/", 1)[1]: v for k, v in inputs.items() if k.split("/", 1)[0] == bundle.name}
        for v in _chosen(manifest.variants, formats):
            model = load(bundle, variant=v.name, threads=threads)
            for case, x in cases.items():
                if v.graph == "window":
                    got = dict(model.window(x))
                else:
                    ys, final = step_through(step_fn(model.backend), manifest.spec, x)
                    got = {"y": ys[:, -1], "y_every_step": ys, **final}
                for name, value in got.items():
                    outputs[f"{bundle.name}/{v.name}/{case}/{name}"] = np.asarray(value)
    return outputs


def compare_runs(bundles: list[Path], host: dict[str, np.ndarray], device: dict[str, np.ndarray],
                 formats: tuple[str, ...] = ()) -> list[dict]:
    rows = []
    for bundle in bundles:
        for v in _chosen(read_manifest(bundle).variants, formats):
            prefix = f"{bundle.name}/{v.name}/"
            keys = sorted(k for k in host if k.startswith(prefix))
            tol = TOLERANCES.get(v.precision)
            row = {"bundle": bundle.name, "variant": v.name, "precision": v.precision, "graph": v.graph,
                   "arrays": len(keys), "max_abs": 0.0, "passed": bool(keys) and tol is not None, "problems": []}
            if tol is None:
                row["problems"].append(f"no tolerance for precision {v.precision!r}")
            if not keys:
                row["problems"].append("no host outputs")
            for k in keys:
                if k not in device:
                    row["passed"] = False
                    row["problems"].append(f"device has no {k}")
                    continue
                max_abs, _, _, ok = compare(device[k], host[k], tol) if tol else (float("inf"), 0, 0, False)
                row["max_abs"] = max(row["max_abs"], max_abs)
                row["passed"] = row["passed"] and ok
            if tol is not None:
                row["tolerance"] = {"atol": tol.atol, "rtol": tol.rtol}
            rows.append(row)
    return rows


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_in = sub.add_parser("inputs", help="write the windows to run (host)")
    p_run = sub.add_parser("run", help="run every variant of each bundle on the windows")
    p_cmp = sub.add_parser("compare", help="max abs difference host vs device, per variant")
    for p in (p_in, p_run, p_cmp):
        p.add_argument("bundles", nargs="+", type=Path)
    p_in.add_argument("--out", type=Path, required=True)
    p_run.add_argument("--inputs", type=Path, required=True)
    p_run.add_argument("--out", type=Path, required=True)
    p_run.add_argument("--threads", type=int)
    p_cmp.add_argument("--host", type=Path, required=True)
    p_cmp.add_argument("--device", type=Path, required=True)
    p_cmp.add_argument("--json", action="store_true")
    for p in (p_run, p_cmp):
        p.add_argument("--format", dest="formats", action="append", default=[],
                       help="only variants of this format (onnx, tflite; repeatable)")
    args = parser.parse_args(argv)

    if args.command == "inputs":
        np.savez(args.out, **make_inputs(args.bundles))
        return 0
    if args.command == "run":
        outputs = run_bundles(args.bundles, _load_npz(args.inputs), args.threads, tuple(args.formats))
        np.savez(args.out, **outputs)
        print(f"{platform.machine()}: ran {len(outputs)} output arrays from {len(args.bundles)} bundles", file=sys.stderr)
        return 0
    rows = compare_runs(args.bundles, _load_npz(args.host), _load_npz(args.device), tuple(args.formats))
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            tol = r.get("tolerance", {})
            print(f"{r['bundle']:<12} {r['variant']:<26} {r['precision']:<13} max abs host vs device "
                  f"{r['max_abs']:.3g}  (tolerance atol {tol.get('atol', float('nan')):g})  "
                  f"{'ok' if r['passed'] else 'FAIL ' + '; '.join(r['problems'][:3])}")
    return 0 if all(r["passed"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
