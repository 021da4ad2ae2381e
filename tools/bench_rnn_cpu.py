"""Why GRU trains slower than LSTM on CPU: time nn.LSTM vs nn.GRU training steps, count their operators.

    python tools/bench_rnn_cpu.py --threads 1 2 --hidden 64 --batch 64 --steps 100

For each thread count: the best-of-N time of one training step (forward + backward) and one
inference forward, with oneDNN (torch.backends.mkldnn) on and off, and the number of operators the
profiler records per training step. PyTorch runs LSTM on CPU as one fused oneDNN primitive per
layer and direction (``aten::mkldnn_rnn_layer``); GRU has no oneDNN path and runs as ~120 small
operators per layer and time step, each paying the thread pool's start/stop cost.
"""

from __future__ import annotations

import argparse
import json
import time


def step_ms(cls, args, *, train: bool, mkldnn: bool, reps: int) -> float:
    import torch

    torch.backends.mkldnn.enabled = mkldnn
    torch.manual_seed(0)
    model = cls(args.features, args.hidden, num_layers=args.layers, batch_first=True)
    x = torch.randn(args.batch, args.steps, args.features)

    def once() -> None:
        if train:
            out, _ = model(x)
            out[:, -1].sum().backward()
        else:
            with torch.no_grad():
                model(x)

    once()
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        once()
        best = min(best, time.perf_counter() - t0)
    torch.backends.mkldnn.enabled = True
    return best * 1000


def operator_count(cls, args) -> tuple[int, str]:
    import torch
    from torch.profiler import ProfilerActivity, profile

    model = cls(args.features, args.hidden, num_layers=args.layers, batch_first=True)
    x = torch.randn(args.batch, args.steps, args.features)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        out, _ = model(x)
        out[:, -1].sum().backward()
    events = prof.key_averages()
    top = max(events, key=lambda e: e.self_cpu_time_total).key
    return sum(e.count for e in events), top


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=100, help="time steps per window")
    parser.add_argument("--features", type=int, default=8)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    import torch
    from torch import nn

    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        for train in (True, False):
            for mkldnn in (True, False):
                lstm = step_ms(nn.LSTM, args, train=train, mkldnn=mkldnn, reps=args.reps)
                gru = step_ms(nn.GRU, args, train=train, mkldnn=mkldnn, reps=args.reps)
                rows.append({"threads": threads, "mode": "train" if train else "infer", "onednn": mkldnn,
                             "lstm_ms": round(lstm, 2), "gru_ms": round(gru, 2), "gru_over_lstm": round(gru / lstm, 2)})
    torch.set_num_threads(args.threads[0])
    ops = {name: operator_count(cls, args) for name, cls in (("lstm", nn.LSTM), ("gru", nn.GRU))}
    result = {"shape": {"batch": args.batch, "steps": args.steps, "features": args.features, "hidden": args.hidden,
                        "layers": args.layers}, "torch": torch.__version__, "timings": rows,
              "operators_per_train_step": {k: {"count": n, "top": top} for k, (n, top) in ops.items()}}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    s = result["shape"]
    print(f"batch {s['batch']}, T {s['steps']}, F {s['features']}, {s['layers']}x{s['hidden']}, torch {torch.__version__}")
    for r in rows:
        print(f"threads {r['threads']}  {r['mode']:5}  oneDNN {'on ' if r['onednn'] else 'off'}  "
              f"LSTM {r['lstm_ms']:8.2f} ms  GRU {r['gru_ms']:8.2f} ms  GRU/LSTM {r['gru_over_lstm']:.2f}")
    for name, (count, top) in ops.items():
        print(f"{name}: {count} operators per training step (most time in {top})")


if __name__ == "__main__":
    main()
