"""Seeded mutations of a small model file and of a manifest, each run through the CLI in this process.

``python tests/hostile/fuzz_worker.py SEED COUNT WORKDIR`` prints one JSON line per failing case and a
last line ``{"done": N}``. Run in its own process by test_fuzz.py, so that a crash (a signal) or a hang
in a native library is seen as such instead of taking pytest down.
"""

from __future__ import annotations

import json
import random
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hostile_helpers import fix_checksum, invoke, make_small_bundle, problems, read_manifest  # noqa: E402

HOSTILE_VALUES = [None, True, -1, 0, 2**63, 1e308, "", "x" * 300, "../x", "/etc/passwd", [], {}, [1, "a"],
                  {"a": []}, float("nan"), "model.onnx"]


def mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    data = bytearray(data)
    kind = rng.choice(["flip", "flip", "zero", "truncate", "insert", "duplicate", "swap"])
    if kind == "flip":
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
    elif kind == "zero":
        i = rng.randrange(len(data))
        data[i : i + rng.randint(1, 64)] = bytes(min(len(data) - i, 64))[: rng.randint(1, 64)]
    elif kind == "truncate":
        del data[rng.randrange(1, len(data)) :]
    elif kind == "insert":
        i = rng.randrange(len(data))
        data[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 32)))
    elif kind == "duplicate":
        i = rng.randrange(len(data))
        data[i:i] = data[i : i + rng.randint(1, 256)]
    else:
        i, j = sorted(rng.randrange(len(data)) for _ in range(2))
        data[i], data[j] = data[j], data[i]
    return bytes(data)


def mutate_json(node, rng: random.Random):
    """Replace, delete or retype one value somewhere in the parsed manifest."""
    path = []
    while isinstance(node, (dict, list)) and node and rng.random() < 0.75:
        key = rng.choice(list(node)) if isinstance(node, dict) else rng.randrange(len(node))
        path.append((node, key))
        node = node[key]
    if not path:
        return
    parent, key = path[-1]
    action = rng.choice(["value", "value", "delete", "wrap"])
    if action == "delete":
        del parent[key]
    elif action == "wrap":
        parent[key] = [parent[key]]
    else:
        parent[key] = rng.choice(HOSTILE_VALUES)


def main(seed: int, count: int, work: Path) -> None:
    rng = random.Random(seed)
    base = make_small_bundle(work / "base")
    x = work / "x.csv"
    x.write_text("\n".join(",".join(f"{rng.random():.3f}" for _ in range(20)) for _ in range(3)) + "\n")
    model = (base / "model.onnx").read_bytes()
    step = (base / "model.step.onnx").read_bytes()
    codes: dict[str, int] = {}
    for case in range(count):
        bundle = work / f"case{case}"
        shutil.copytree(base, bundle)
        kind = case % 5
        commands = [["run", bundle, "--input", x], ["run", bundle, "--stream"], ["verify", bundle], ["info", bundle]]
        if kind in (0, 2):  # a damaged model file whose checksum was fixed up: the loader must reach it
            file = rng.choice(["model.onnx", "model.step.onnx"])
            (bundle / file).write_bytes(mutate_bytes(model if file == "model.onnx" else step, rng))
            fix_checksum(bundle, file)
            what = f"model {file}"
        elif kind == 1:  # a manifest with a value replaced, deleted or retyped
            manifest = read_manifest(bundle)
            for _ in range(rng.randint(1, 3)):
                mutate_json(manifest, rng)
            (bundle / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
            what = "manifest values"
        elif kind == 3:  # a manifest damaged byte by byte
            text = (bundle / "manifest.json").read_bytes()
            (bundle / "manifest.json").write_bytes(mutate_bytes(text, rng))
            what = "manifest bytes"
        else:  # a bare .onnx file (no manifest, no checksum): its embedded metadata is all there is
            file = rng.choice(["model.onnx", "model.step.onnx"])
            bare = bundle / f"bare.{file}"
            bare.write_bytes(mutate_bytes(model if file == "model.onnx" else step, rng))
            what = f"bare {file}"
            commands = [["run", bare, "--input", x], ["run", bare, "--stream"], ["info", bare]]
        print(json.dumps({"case": case, "what": what}), file=sys.stderr, flush=True)  # the last one names a crash
        for args in commands:
            result = invoke(args, input="0.1\n0.2\n" if "--stream" in args else None)
            codes[f"{args[0]} {result.exit_code}"] = codes.get(f"{args[0]} {result.exit_code}", 0) + 1
            found = problems(result)
            if found:
                print(json.dumps({"case": case, "what": what, "command": args[0], "problems": found}), flush=True)
        shutil.rmtree(bundle)
    print(json.dumps({"done": count, "exit_codes": codes}), flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]))
