"""UCR/UEA archive sets and public forecasting series, end to end: train on TRAIN, score on TEST.

    python tools/archive_bench.py [--out docs/archive.md] [--sets GunPoint,Airline] [--epochs 80]

Data: only files the aeon wheel ships (``aeon==AEON_VERSION``, downloaded with ``--no-deps`` into
``.cache/aeon/`` by tools/setup_env.sh, or by this script before it starts; aeon is never
installed or imported). For every set and for LSTM and GRU: ``edgernn train`` with the official
TEST file as ``--test-data`` (forecasting: a chronological split, last 20 % for test), ``export``
with fp16, int8-dynamic and int8-static (``--keep-passing``), and ``evaluate`` of every variant on
the official test file. Beside them: 1-NN DTW (full window, dependent DTW for multivariate sets,
computed here with a small NumPy DTW; no published figure is quoted) for classification and
regression, persistence and seasonal naive for forecasting. Writes a Markdown report.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from aeon_data import AEON_VERSION, CACHE, WHEEL, aeon_file  # noqa: E402

QUANTIZE = ("fp16", "int8-weights", "int8-dynamic", "int8-static")


@dataclass(frozen=True)
class CaseSet:
    name: str
    kind: str  # classification | regression | forecast
    note: str = ""
    window: int | None = None  # forecasting
    season: int | None = None
    transform: dict = field(default_factory=dict)  # forecasting: DataSource transform fields


SETS = [
    CaseSet("GunPoint", "classification", "univariate"),
    CaseSet("ItalyPowerDemand", "classification", "univariate"),
    CaseSet("ArrowHead", "classification", "univariate"),
    CaseSet("UnitTest", "classification", "univariate (ChinaTown cut down)"),
    CaseSet("BasicMotions", "classification", "multivariate, 6 dims"),
    CaseSet("JapaneseVowels", "classification", "multivariate, 12 dims, variable length"),
    CaseSet("PickupGestureWiimoteZ", "classification", "univariate, variable length"),
    CaseSet("Covid3Month", "regression", "univariate"),
    CaseSet("CardanoSentiment", "regression", "multivariate, 2 dims"),
    CaseSet("Airline", "forecast", "monthly passengers 1949-1960", window=24, season=12,
            transform={"forecast_target": "change", "log": True, "window_scale": True}),
    CaseSet("ShampooSales", "forecast", "monthly sales 1991-1993, 36 points", window=6, season=12,
            transform={"forecast_target": "change", "log": True, "window_scale": True}),
    CaseSet("solar", "forecast", "half-hourly solar generation, 6 days", window=48, season=48,
            transform={"forecast_target": "change"}),
]


def ensure_wheel() -> None:
    if not WHEEL.is_file():
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", f"aeon=={AEON_VERSION}",
                        "-d", str(CACHE)], check=True)


# ---- 1-NN DTW ------------------------------------------------------------------------------------------


def dtw_distances(a: np.ndarray, la: np.ndarray, b: np.ndarray, lb: np.ndarray, block: int = 64) -> np.ndarray:
    """Full-window dependent DTW (squared Euclidean cost over dimensions) between every a (Na, T, D) and
    b (Nb, T', D) at their true lengths; (Na, Nb). Vectorised over pairs, one DP cell at a time."""
    out = np.empty((len(a), len(b)))
    cols = np.arange(len(b))
    for start in range(0, len(a), block):
        xa, na = a[start : start + block], la[start : start + block]
        prev = np.full((len(xa), len(b), b.shape[1]), np.inf)
        result = np.full((len(xa), len(b)), np.inf)
        for i in range(int(na.max())):
            cost = ((xa[:, None, i, None, :] - b[None, :, :, :]) ** 2).sum(-1)  # (na, Nb, T')
            row = np.empty_like(cost)
            row[:, :, 0] = cost[:, :, 0] + (prev[:, :, 0] if i else 0.0)
            for j in range(1, b.shape[1]):
                best = np.minimum(np.minimum(prev[:, :, j], prev[:, :, j - 1]), row[:, :, j - 1]) if i \
                    else row[:, :, j - 1]
                row[:, :, j] = cost[:, :, j] + best
            ending = na - 1 == i
            result[ending] = row[ending][:, cols, lb - 1]
            prev = row
        out[start : start + block] = result
    return out


def one_nn_dtw(train, test) -> float:
    """1-NN DTW on raw values: accuracy (classification) or MSE (regression)."""
    lengths = lambda ds: ds.lengths if ds.lengths is not None else np.full(ds.n, ds.window)  # noqa: E731
    d = dtw_distances(test.x.astype(np.float64), lengths(test), train.x.astype(np.float64), lengths(train))
    nearest = d.argmin(axis=1)
    if train.head == "classification":
        return float(np.mean(train.y[nearest] == test.y))
    return float(np.mean((train.y[nearest] - test.y) ** 2))


# ---- one set -------------------------------------------------------------------------------------------


def source_for(s: CaseSet):
    from edgernn.datasource import DataSource

    if s.kind == "forecast":
        path = aeon_file(f"{s.name}/{s.name}.csv")
        return DataSource(path=str(path), window=s.window, season=s.season, val_fraction=0.15, test_fraction=0.2,
                          **s.transform)
    return DataSource(path=str(aeon_file(f"{s.name}/{s.name}_TRAIN.ts")),
                      test_path=str(aeon_file(f"{s.name}/{s.name}_TEST.ts")), val_fraction=0.2)


def run_set(s: CaseSet, epochs: int, hidden: int, work: Path) -> dict:
    from edgernn.errors import EdgeRnnError
    from edgernn.evaluate import evaluate_bundle
    from edgernn.export import export_checkpoint
    from edgernn.nn.train import TrainConfig, train

    source = source_for(s)
    splits = source.splits()
    row = {"set": s.name, "kind": s.kind, "note": s.note, "train": splits.train.n + splits.val.n,
           "test": splits.test.n, "length": _length(splits.train), "dims": splits.train.features, "cells": {}}
    if s.kind == "forecast":
        raw = source_for(CaseSet(s.name, s.kind, window=s.window, season=s.season)).splits().test
        m = train_metrics_baselines(raw, s)
        row["baselines"] = m
    else:
        started = time.perf_counter()
        row["dtw"] = one_nn_dtw(_full_train(source), splits.test)
        row["dtw_seconds"] = round(time.perf_counter() - started, 1)
    for cell in ("lstm", "gru"):
        run, bundle = work / f"{s.name}-{cell}", work / f"{s.name}-{cell}-bundle"
        result = train(source, TrainConfig(cell=cell, hidden_size=hidden, epochs=epochs), run, progress=False)
        entry = {"train_seconds": result.metrics["train_seconds"], "epochs": result.metrics["epochs_run"],
                 "config": result.metrics["config"], "verdict": result.metrics.get("verdict", "")}
        try:
            exported = export_checkpoint(run, bundle, quantize=QUANTIZE, keep_passing=True, best_effort=True)
            entry["refused"] = [r["variant"] for r in exported.refused] + [e["variant"] for e in exported.manifest.not_written]
            report = evaluate_bundle(bundle, checkpoint=run, max_drop=1e9)
            entry["variants"] = {sc.variant: sc.metrics[report.metric] for sc in report.scores}
            entry["outside_calibration"] = next((sc.outside_calibration for sc in report.scores
                                                 if sc.outside_calibration is not None), None)
        except EdgeRnnError as e:
            entry["error"] = str(e)
            entry["variants"] = {"pytorch-fp32": result.metrics["test"]["accuracy" if s.kind == "classification"
                                                                        else "mse"]}
        row["cells"][cell] = entry
        print(f"  {s.name} {cell}: {entry['variants']} ({entry['train_seconds']} s)", flush=True)
    return row


def _length(ds) -> str:
    if ds.lengths is None:
        return str(ds.window)
    return f"{int(ds.lengths.min())}..{int(ds.lengths.max())}"


def _full_train(source):
    """The whole TRAIN file (train + validation): what 1-NN DTW gets to search."""
    from edgernn.data.datasets import check_classification_set

    full = source.load()
    check_classification_set(full)
    return full


def train_metrics_baselines(test, s: CaseSet) -> dict:
    from edgernn.metrics import forecast_baselines

    return {k: v["mse"] for k, v in forecast_baselines(test.x, test.y, season=s.season).items()}


# ---- report --------------------------------------------------------------------------------------------


def fmt(v, kind: str) -> str:
    if v is None:
        return "-"
    return f"{v:.3f}" if kind == "classification" else f"{v:.4g}"


def render(rows: list[dict], seconds: float, settings: str) -> str:
    lines = ["# Archive benchmark: UCR/UEA sets and forecasting series", "",
             f"Written by `tools/archive_bench.py` ({settings}; {seconds / 60:.1f} min on this machine). "
             f"Data: the files the aeon {AEON_VERSION} wheel ships (never imported). Each model is trained on the "
             "official TRAIN file (validation cut from it) and scored on the official TEST file; forecasting "
             "series are split chronologically (last 20 % test). 1-NN DTW is computed here (full window, dependent "
             "DTW on the raw values), not quoted.", ""]
    cls = [r for r in rows if r["kind"] != "forecast"]
    lines += ["## Classification (accuracy, higher is better) and regression (MSE, lower is better)", "",
              "| set | kind | train / test | length | dims | 1-NN DTW | LSTM | GRU | vs DTW | train s (LSTM / GRU) |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for r in cls:
        lstm, gru = (r["cells"][c]["variants"].get("onnx-window-fp32", r["cells"][c]["variants"].get("pytorch-fp32"))
                     for c in ("lstm", "gru"))
        best = max(lstm, gru) if r["kind"] == "classification" else min(lstm, gru)
        better = best >= r["dtw"] if r["kind"] == "classification" else best <= r["dtw"]
        lines.append(f"| {r['set']} | {r['kind']}, {r['note']} | {r['train']} / {r['test']} | {r['length']} | "
                     f"{r['dims']} | {fmt(r['dtw'], r['kind'])} | {fmt(lstm, r['kind'])} | {fmt(gru, r['kind'])} | "
                     f"{'at or above' if better else '**below**'} | {r['cells']['lstm']['train_seconds']} / "
                     f"{r['cells']['gru']['train_seconds']} |")
    fc = [r for r in rows if r["kind"] == "forecast"]
    if fc:
        lines += ["", "## Forecasting (test MSE in data units, lower is better)", "",
                  "| series | windows train / test | window | persistence | seasonal naive | LSTM | GRU | beats persistence |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in fc:
            b = r["baselines"]
            seasonal = next((v for k, v in b.items() if k.startswith("seasonal")), None)
            lstm, gru = (r["cells"][c]["variants"].get("onnx-window-fp32") for c in ("lstm", "gru"))
            beats = [c.upper() for c, v in (("lstm", lstm), ("gru", gru)) if v is not None and v < b["persistence"]]
            lines.append(f"| {r['set']} ({r['note']}) | {r['train']} / {r['test']} | {r['length']} | "
                         f"{b['persistence']:.4g} | {fmt(seasonal, 'forecast')} | {fmt(lstm, 'forecast')} | "
                         f"{fmt(gru, 'forecast')} | {', '.join(beats) or '**neither**'} |")
        from edgernn.transforms import ForecastTransform

        used = [f"{s.name}: {ForecastTransform(target=s.transform.get('forecast_target', 'value'), log=s.transform.get('log', False), window_scale=s.transform.get('window_scale', False)).describe()}"  # noqa: E501
                for s in SETS if s.kind == "forecast" and s.name in {r["set"] for r in fc}]
        lines += ["", "Forecast transforms (kept in the spec, applied by the runtime): " + "; ".join(used) + "."]
    lines += ["", "## Every exported variant (official test file)", "",
              "| set | cell | pytorch-fp32 | onnx fp32 | fp16 | int8-weights | int8-dynamic | int8-static | inputs "
              "outside int8-static calibration | refused / not written |", "|---|---|---|---|---|---|---|---|---|---|"]
    names = ("pytorch-fp32", "onnx-window-fp32", "onnx-window-fp16", "onnx-window-int8-weights",
             "onnx-window-int8-dynamic", "onnx-window-int8-static")
    for r in rows:
        for cell, e in r["cells"].items():
            v = e["variants"]
            outside = e.get("outside_calibration")
            problems = ", ".join(e.get("refused", [])) + (f" error: {e['error']}" if e.get("error") else "")
            lines.append(f"| {r['set']} | {cell.upper()} | " + " | ".join(fmt(v.get(n), r["kind"]) for n in names)
                         + f" | {'-' if outside is None else f'{100 * outside:.1f} %'} | {problems or '-'} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "archive.md")
    parser.add_argument("--sets", help="comma-separated subset of: " + ", ".join(s.name for s in SETS))
    parser.add_argument("--epochs", type=int, help="at most this many epochs (default: picked from the data size)")
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: the least contention)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    ensure_wheel()
    chosen = [s for s in SETS if not args.sets or s.name in args.sets.split(",")]
    from edgernn.errors import EdgeRnnError

    started = time.perf_counter()
    rows, failed = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for s in chosen:
            print(f"{s.name} ({s.kind})", flush=True)
            try:
                rows.append(run_set(s, args.epochs, args.hidden, Path(tmp)))
            except EdgeRnnError as e:  # a miss, reported as such
                print(f"  {s.name}: {e}", flush=True)
                failed.append((s.name, str(e)))
    epochs = f"at most {args.epochs} epochs" if args.epochs else "epochs"
    settings = f"hidden {args.hidden}, {epochs}, batch size and patience picked from the data size"
    text = render(rows, time.perf_counter() - started, settings)
    if failed:
        text += "\n## Sets that could not be run\n\n" + "".join(f"- {name}: {why}\n" for name, why in failed)
    args.out.write_text(text)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
