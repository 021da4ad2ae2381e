"""Train with ``--mmap`` (or load in memory) in this process and print the peak growth of its memory, as JSON.

Usage: python tools/rss_probe.py DATA HEAD WINDOW STRIDE OUT [--in-memory] [--warm-up SMALL_DATA]

With ``--warm-up``, a first run on a small file of the same kind pays the one-time costs (torch's
allocator and kernels, matplotlib: about 80 MiB) before the baseline is taken, so the growth
measured is what the data set costs.

Memory is read from /proc/self/status every 5 ms on a thread: ``RssAnon`` is memory the process
owns (heap, tensors, copies); ``RssFile`` counts the mapped file's pages that are in the page
cache, which the kernel reclaims under pressure. Linux only.
"""

from __future__ import annotations

import json
import sys
import threading
import time


def status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def main() -> None:
    data, head, window, stride, out = sys.argv[1:6]
    in_memory = "--in-memory" in sys.argv
    from edgernn.datasource import DataSource
    from edgernn.nn.train import TrainConfig, train

    config = TrainConfig(epochs=1, hidden_size=4, batch_size=256, threads=1)
    if "--warm-up" in sys.argv:
        small = sys.argv[sys.argv.index("--warm-up") + 1]
        train(DataSource(path=small, head=head, window=int(window), mmap=True), config, out, progress=False)
    source = DataSource(path=data, head=head, window=int(window), stride=int(stride), mmap=not in_memory)
    base = {k: status_kib(k) for k in ("RssAnon", "RssFile")}
    peak = dict(base)
    running = True

    def watch() -> None:
        while running:
            for k in peak:
                peak[k] = max(peak[k], status_kib(k))
            time.sleep(0.005)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    if in_memory:
        source.splits()  # the data set as the in-memory path holds it
    else:
        train(source, config, out, progress=False)
    running = False
    watcher.join()
    print(json.dumps({f"{k}_growth_mib": (peak[k] - base[k]) / 1024 for k in peak}))


if __name__ == "__main__":
    main()
