"""Cold start: a fresh Python process, timed from spawn to its first line of output, and its peak RSS.

Three kinds of child process, all with this interpreter and the same thread setting:

- **edgernn**: ``import edgernn.runtime``, ``load()`` the variant (sha256 check included), predict one
  window (or take one streaming step) through the public API, print the first value;
- **bare**: ``import onnxruntime``, open the same ``.onnx`` file, run it once on zeros, print — the
  least a Python program can do to get an answer from the model: the baseline the ratio is taken to.
  For a ``.tflite`` variant the bare script opens the file with the same TFLite interpreter the
  runtime picked (``ai-edge-litert`` or ``tflite-runtime``), resizes the inputs and invokes it once;
- **cli**: ``edgernn run BUNDLE --input one_window.npy`` (``runpy`` of ``python -m edgernn``).

Runs of edgernn (or cli) and bare alternate, and each figure is the median of its runs, so a slow
moment of the machine lands on both.

Peak RSS is the child's ``VmHWM`` from ``/proc/self/status``, written to stderr at exit. Not
``ru_maxrss``: on Linux, exec records the high-water mark of the memory it replaces, and a child
forked (or vforked) from this process would report at least the parent's peak — the benchmark's
own. Where /proc is missing, ``ru_maxrss`` of that child (``os.wait4``) is the fallback, an upper bound.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

import numpy as np

from edgernn.bench.timing import BenchSettings, ColdStart
from edgernn.errors import CheckFailedError
from edgernn.runtime import load
from edgernn.spec import ModelSpec

# Prepended to every child: report the process's own peak RSS on stderr at exit.
PEAK_RSS_AT_EXIT = """
import atexit, sys
def _edgernn_bench_peak_rss():
    try:
        with open("/proc/self/status") as status:
            kib = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
        sys.stderr.write("\\nedgernn-bench-peak-rss-kib " + kib + "\\n")
    except (OSError, StopIteration):
        pass
atexit.register(_edgernn_bench_peak_rss)
"""
PEAK_MARKER = "edgernn-bench-peak-rss-kib "

EDGERNN_CHILD = PEAK_RSS_AT_EXIT + """
import sys
import numpy as np
from edgernn.runtime import load
path, variant, threads, length = sys.argv[1], sys.argv[2] or None, int(sys.argv[3]), int(sys.argv[4])
model = load(path, variant=variant, threads=threads)
F = model.spec.input_size
if model.variant.graph == "step":
    prediction = model.stream(batch=1).step(np.zeros(F, np.float32))
else:
    prediction = model.predict(np.zeros((1, length, F), np.float32))
print(float(np.asarray(prediction.values).ravel()[0]), flush=True)
"""

BARE_CHILD = PEAK_RSS_AT_EXIT + """
import json, sys
import numpy as np
import onnxruntime as ort
options = ort.SessionOptions()
options.intra_op_num_threads = int(sys.argv[2])
options.inter_op_num_threads = 1
session = ort.InferenceSession(sys.argv[1], options, providers=["CPUExecutionProvider"])
feeds = {name: np.zeros(shape, np.float32) for name, shape in json.loads(sys.argv[3]).items()}
print(float(session.run(None, feeds)[0].ravel()[0]), flush=True)
"""

BARE_TFLITE_CHILD = PEAK_RSS_AT_EXIT + """
import json, sys
import numpy as np
if sys.argv[4] == "tflite-runtime":
    from tflite_runtime.interpreter import Interpreter
else:
    from ai_edge_litert.interpreter import Interpreter
interpreter = Interpreter(model_path=sys.argv[1], num_threads=int(sys.argv[2]))
shapes = json.loads(sys.argv[3])
for detail in interpreter.get_input_details():
    interpreter.resize_tensor_input(detail["index"], shapes[detail["name"]], strict=False)
interpreter.allocate_tensors()
for detail in interpreter.get_input_details():
    interpreter.set_tensor(detail["index"], np.zeros(shapes[detail["name"]], detail["dtype"]))
interpreter.invoke()
output = interpreter.get_output_details()[0]
print(float(interpreter.get_tensor(output["index"]).ravel()[0]), flush=True)
"""


CLI_CHILD = PEAK_RSS_AT_EXIT + """
import runpy
sys.argv = ["edgernn", *sys.argv[1:]]
runpy.run_module("edgernn", run_name="__main__", alter_sys=True)
"""


def _maxrss_mib(ru_maxrss: int) -> float:
    """ru_maxrss is in KiB on Linux, in bytes on macOS."""
    return ru_maxrss / (1024 * 1024) if sys.platform == "darwin" else ru_maxrss / 1024


def time_to_first_line(argv: list[str]) -> tuple[float, float | None]:
    """Spawn ``argv``; seconds until its first line on stdout, and its peak RSS in MiB."""
    with tempfile.TemporaryFile() as stderr:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=stderr, stdin=subprocess.DEVNULL, text=True)
        first = proc.stdout.readline()
        seconds = time.perf_counter() - started
        proc.stdout.read()  # drain, so the child never blocks on a full pipe
        proc.stdout.close()
        peak = None
        if hasattr(os, "wait4"):
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            peak = _maxrss_mib(usage.ru_maxrss)
        else:
            proc.wait()
        stderr.seek(0)
        lines = stderr.read().decode("utf-8", "replace").strip().splitlines()
    reported = [line for line in lines if line.startswith(PEAK_MARKER)]
    if reported:
        peak = int(reported[-1][len(PEAK_MARKER):]) / 1024
    if proc.returncode != 0 or not first.strip():
        errors = [line for line in lines if line.strip() and not line.startswith(PEAK_MARKER)]
        raise CheckFailedError(f"cold start process failed (exit {proc.returncode}): "
                               f"{errors[-1] if errors else 'no output'}")
    return seconds, peak


def bare_feeds(model, length: int) -> dict[str, list[int]]:
    """Zero inputs for the bare script: the window ``x`` is ``(1, length, F)``, other free axes are 1."""
    if model.variant.format == "tflite":
        details = model.backend.interpreter.get_input_details()
        # shape_signature keeps the free axes as -1 (shape holds whatever the last resize set)
        inputs = [(d["name"], [int(n) for n in d.get("shape_signature", d["shape"])]) for d in details]
    else:
        inputs = [(i.name, list(i.shape)) for i in model.backend.session.get_inputs()]
    feeds = {}
    for name, shape in inputs:
        if name == "x":
            feeds[name] = [1, length, model.spec.input_size][: len(shape)]  # (1, T) token ids, or (1, T, F)
        else:
            feeds[name] = [d if isinstance(d, int) and d > 0 else 1 for d in shape]
    return feeds


def _alternate(ours: list[str], bare: list[str], runs: int) -> ColdStart:
    ours_runs, bare_runs, ours_rss, bare_rss = [], [], [], []
    for _ in range(runs):
        seconds, rss = time_to_first_line(ours)
        ours_runs.append(seconds)
        ours_rss.append(rss)
        seconds, rss = time_to_first_line(bare)
        bare_runs.append(seconds)
        bare_rss.append(rss)
    peak = max(ours_rss) if None not in ours_rss else None
    bare_peak = max(bare_rss) if None not in bare_rss else None
    return ColdStart(seconds=median(ours_runs), peak_rss_mib=peak, runs=ours_runs,
                     bare_seconds=median(bare_runs), bare_peak_rss_mib=bare_peak)


def _bare_argv(model, settings: BenchSettings, length: int) -> list[str]:
    """The bare script for the model's format: onnxruntime for .onnx, the same TFLite interpreter for .tflite."""
    feeds = json.dumps(bare_feeds(model, length))
    if model.variant.format == "tflite":
        return [sys.executable, "-c", BARE_TFLITE_CHILD, str(model.path), str(settings.threads), feeds,
                model.backend.name]
    return [sys.executable, "-c", BARE_CHILD, str(model.path), str(settings.threads), feeds]


def cold_start(path: Path, model, settings: BenchSettings, length: int) -> ColdStart:
    """Cold start of the Python API on ``model``'s variant, beside the bare onnxruntime script."""
    variant = model.variant.name if model.manifest is not None else ""
    ours = [sys.executable, "-c", EDGERNN_CHILD, str(path), variant, str(settings.threads), str(length)]
    return _alternate(ours, _bare_argv(model, settings, length), settings.cold_runs)


def cli_cold_start(path: Path, variant: str, spec: ModelSpec, settings: BenchSettings, length: int) -> ColdStart:
    """Cold start of ``edgernn run BUNDLE --input one_window.npy`` beside the bare script."""
    model = load(path, variant=variant, threads=settings.threads)
    with tempfile.TemporaryDirectory(prefix="edgernn-bench-") as tmp:
        window = Path(tmp) / "window.npy"
        np.save(window, np.zeros((1, length, spec.input_size), np.float32))
        ours = [sys.executable, "-c", CLI_CHILD, "run", str(path), "--variant", variant,
                "--input", str(window), "--threads", str(settings.threads)]
        return _alternate(ours, _bare_argv(model, settings, length), settings.cold_runs)
