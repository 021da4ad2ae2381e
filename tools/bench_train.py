"""Throughput of `edgernn train` against a plain PyTorch loop, and DDP scaling over processes.

    python tools/bench_train.py --device cpu --cell lstm --hidden 64 --layers 2 --window 100 --samples 4000
    python tools/bench_train.py --ddp 2          # also: torchrun with 1 and 2 processes (gloo on CPU)

Both sides train the same model (``RnnModel`` of the same spec and seed) with the same batch size,
optimizer (Adam), gradient clipping and precision on the same device, on the built-in ``bands`` task.
Figures are samples per second in optimizer steps, over the epochs after the first (warm-up excluded).
The tool's overhead is the ratio edgernn / plain (issue 16 asks for >= 0.8 on GPU).

DDP scaling: the same training as 1 process x T threads and as N processes x T threads under
torchrun; efficiency = samples/s with N processes / (N x samples/s with 1). On a machine with fewer
free cores than N x T the processes compete for cores; the figure says so and is reported as measured.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def plain_loop(args) -> float:
    """Samples/s of a hand-written loop: tensors on the device, randperm batches, autocast, Adam, clip."""
    import torch
    from torch import nn

    from edgernn import data
    from edgernn.nn.device import Precision, resolve_device
    from edgernn.nn.model import build_model
    from edgernn.spec import ModelSpec

    device = resolve_device(args.device)
    precision = Precision(args.precision, device)
    tr = data.split(data.make_builtin("bands", seed=0, n=args.samples, window=args.window)).train
    norm = data.fit_normalization(tr)
    x = torch.from_numpy(data.normalize_x(tr.x, norm)).to(device)
    y = torch.from_numpy(tr.y).to(device)
    spec = ModelSpec(cell=args.cell, input_size=1, hidden_size=args.hidden, num_layers=args.layers,
                     head="classification", output_size=4, window=args.window)
    model = build_model(spec, seed=0).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
    loss_fn = nn.CrossEntropyLoss()
    timed_samples, timed_seconds = 0, 0.0
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(x), device=device)
        t0 = time.perf_counter()
        for start in range(0, len(x), args.batch_size):
            idx = order[start : start + args.batch_size]
            optimizer.zero_grad(set_to_none=True)
            with precision.autocast():
                out = model(x[idx])
            loss = loss_fn(out.float(), y[idx])
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if epoch > 0:
            timed_samples += len(x)
            timed_seconds += time.perf_counter() - t0
    return timed_samples / timed_seconds


def edgernn_train(args, out: Path) -> dict:
    from edgernn.datasource import DataSource
    from edgernn.nn.train import TrainConfig, train

    config = TrainConfig(cell=args.cell, hidden_size=args.hidden, num_layers=args.layers, epochs=args.epochs,
                         batch_size=args.batch_size, patience=10**6, device=args.device, precision=args.precision,
                         threads=args.threads)
    result = train(DataSource(task="bands", n=args.samples, window=args.window), config, out, progress=False)
    return result.metrics["hardware"]


def torchrun(args, nproc: int, out: Path) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads or 1),
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
               "-m", "edgernn", "train", "--task", "bands", "--samples", str(args.samples), "--window",
               str(args.window), "--cell", args.cell, "--hidden", str(args.hidden), "--layers", str(args.layers),
               "--epochs", str(args.epochs), "--batch-size", str(args.batch_size), "--patience", "1000000",
               "--threads", str(args.threads or 1), "--device", "cpu", "--quiet", "--json", "--out", str(out)]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"torchrun with {nproc} processes failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout)["hardware"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--cell", default="lstm", choices=["lstm", "gru"])
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--window", type=int, default=100)
    parser.add_argument("--samples", type=int, default=4000, help="windows of the built-in bands task (70%% train)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3, help="at least 2: the first is warm-up, not timed")
    parser.add_argument("--threads", type=int, help="torch threads per process")
    parser.add_argument("--ddp", type=int, default=0, help="also run torchrun with 1 and this many CPU processes")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error("--epochs must be at least 2 (the first epoch is warm-up)")
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    report: dict = {"settings": {k: v for k, v in vars(args).items() if k != "json"}, "torch": torch.__version__,
                    "threads": torch.get_num_threads(), "cpu_count": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        plain = plain_loop(args)
        hardware = edgernn_train(args, Path(tmp) / "run")
        report["plain_samples_per_s"] = round(plain, 1)
        report["edgernn_samples_per_s"] = hardware["steady_samples_per_s"]
        report["edgernn_over_plain"] = round(hardware["steady_samples_per_s"] / plain, 3)
        report["device"] = hardware["device"]
        if args.ddp > 1:
            one = torchrun(args, 1, Path(tmp) / "ddp1")["steady_samples_per_s"]
            many = torchrun(args, args.ddp, Path(tmp) / f"ddp{args.ddp}")["steady_samples_per_s"]
            report["ddp"] = {"processes": args.ddp, "threads_per_process": args.threads or 1,
                             "samples_per_s_1": one, "samples_per_s_n": many,
                             "speedup": round(many / one, 3), "efficiency": round(many / (args.ddp * one), 3)}
    if args.json:
        print(json.dumps(report, indent=2))
        return
    s = report["settings"]
    print(f"{s['cell']} {s['layers']}x{s['hidden']}, T={s['window']}, batch {s['batch_size']}, {s['precision']} on "
          f"{report['device']} ({os.cpu_count()} cores visible), torch {report['torch']}")
    print(f"plain PyTorch loop  {report['plain_samples_per_s']:10.1f} samples/s")
    print(f"edgernn train       {report['edgernn_samples_per_s']:10.1f} samples/s  "
          f"({report['edgernn_over_plain']:.2f}x the plain loop)")
    if "ddp" in report:
        d = report["ddp"]
        print(f"DDP (gloo, {d['threads_per_process']} thread(s) per process): 1 process {d['samples_per_s_1']:.1f}, "
              f"{d['processes']} processes {d['samples_per_s_n']:.1f} samples/s: speed-up "
              f"{d['speedup']:.2f}, efficiency {d['efficiency']:.0%}")


if __name__ == "__main__":
    main()
