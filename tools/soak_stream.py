"""Soak `edgernn run --stream`: a million frames, half of them bad, and the process's memory watched.

    python tools/soak_stream.py [--bundle models/sum-lstm/bundle] [--frames 1000000] [--bad-ratio 0.5]

Frames go in through a pipe as fast as the stream answers them; every good frame must be answered, in
order, and every bad one reported on stderr and skipped. The resident memory (VmRSS, Linux) of the
`edgernn` process is sampled every 0.2 s; its growth from the first 5 % of the frames to the peak is the
figure to watch (target: under 1 MiB; the figure at the end is printed too). Not part of CI: it runs for
minutes (about 160 s for a million frames on one core).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BAD_LINES = [b"not a frame", b"1,2,3", b"[[1]]", b"nan", b"\xff\xfe\x00 binary", b"[" * 5000, b'{"x": 1}', b"1e999"]


def rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def frames(total: int, bad_ratio: float, features: int):
    """Line ``i`` is bad when the running count of bad lines falls behind ``bad_ratio``; good ones are numbers."""
    bad = 0
    for i in range(total):
        if bad < bad_ratio * (i + 1):
            bad += 1
            yield False, BAD_LINES[i % len(BAD_LINES)] + b"\n"
        else:
            yield True, (",".join(f"{((i * 7 + k) % 100) / 100:.2f}" for k in range(features)) + "\n").encode()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, default=REPO / "models" / "sum-lstm" / "bundle")
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument("--bad-ratio", type=float, default=0.5)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()

    manifest = json.loads((args.bundle / "manifest.json").read_text())
    features = manifest["spec"]["input_size"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "LC_ALL": "C.UTF-8"}
    proc = subprocess.Popen([sys.executable, "-m", "edgernn", "run", str(args.bundle), "--stream"], env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=1 << 16)
    expected_good = sum(1 for good, _ in frames(args.frames, args.bad_ratio, features) if good)
    answered, warnings, last_err = 0, 0, [""]
    samples: list[tuple[int, int]] = []  # (frames answered, RSS KiB)
    started = time.perf_counter()

    def feed():
        try:
            for _, line in frames(args.frames, args.bad_ratio, features):
                proc.stdin.write(line)
        finally:
            proc.stdin.close()

    def drain_stderr():
        nonlocal warnings
        for line in proc.stderr:
            if line.startswith(b"warning: "):
                warnings += 1
            else:
                last_err[0] = line.decode("utf-8", "replace").strip()

    def sample():
        while proc.poll() is None:
            kib = rss_kib(proc.pid)
            if kib is not None:
                samples.append((answered, kib))
            time.sleep(0.2)

    threads = [threading.Thread(target=f, daemon=True) for f in (feed, drain_stderr, sample)]
    for t in threads:
        t.start()
    in_order = True
    for line in proc.stdout:
        answered += 1
        if answered % 50_000 == 0 or answered == 1:
            record = json.loads(line)
            in_order &= record["frame"] == answered
    proc.wait()
    for t in threads[:2]:
        t.join()
    seconds = time.perf_counter() - started

    warm = [kib for n, kib in samples if n >= 0.05 * expected_good]
    baseline, final, peak = (warm[0], warm[-1], max(warm)) if warm else (None, None, None)
    figures = {
        "frames": args.frames, "good": expected_good, "bad": args.frames - expected_good,
        "answered": answered, "bad_reported": warnings, "exit_code": proc.returncode, "summary": last_err[0],
        "answers_in_order": in_order, "seconds": round(seconds, 1),
        "rss_kib_after_5pct": baseline, "rss_kib_end": final, "rss_kib_peak": peak,
        "rss_growth_mib": None if baseline is None else round((final - baseline) / 1024, 3),
        "rss_peak_growth_mib": None if baseline is None else round((peak - baseline) / 1024, 3),
    }
    ok = (proc.returncode == 0 and answered == expected_good and warnings == args.frames - expected_good
          and in_order and figures["rss_peak_growth_mib"] is not None and figures["rss_peak_growth_mib"] < 1.0)
    if args.json:
        print(json.dumps({**figures, "passed": ok}, indent=2))
    else:
        for k, v in figures.items():
            print(f"{k:<22} {v}")
        print("soak: " + ("passed" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
