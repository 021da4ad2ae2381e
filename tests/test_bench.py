"""`edgernn bench`: the shape of its figures, cold start, and that it stays free of torch.

No timed assertions: timings are noisy. Only shapes, signs, order of percentiles, exit codes and text.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from edgernn.bench import BenchSettings, Latency, bench, measure
from edgernn.bench.coldstart import time_to_first_line
from edgernn.cli import cli
from edgernn.errors import BadInputError, CheckFailedError
from edgernn.spec import ModelSpec

QUICK = ["--repeat", "20", "--cold-runs", "1", "--batch", "4", "--length", "6"]


def _export(tmp_path_factory, name: str, spec: ModelSpec):
    from edgernn.checkpoint import save_checkpoint
    from edgernn.export import export_bundle
    from edgernn.nn import build_model

    root = tmp_path_factory.mktemp(name)
    weights = {k: v.detach().numpy() for k, v in build_model(spec, seed=0).state_dict().items()}
    save_checkpoint(root / "run", {"spec": spec.to_dict()}, weights)
    export_bundle(spec, weights, root / "bundle")
    return root / "bundle", root / "run"


@pytest.fixture(scope="module")
def lstm(tmp_path_factory):
    return _export(tmp_path_factory, "lstm", ModelSpec(cell="lstm", input_size=3, hidden_size=8, num_layers=2, window=6))


@pytest.fixture(scope="module")
def gru(tmp_path_factory):
    return _export(tmp_path_factory, "gru", ModelSpec(cell="gru", input_size=2, hidden_size=5, window=4))


def _bench_json(*args) -> dict:
    result = CliRunner().invoke(cli, ["bench", *QUICK, *map(str, args), "--json"])  # later options win
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _check_latency(d: dict) -> None:
    assert set(d) == {"p50_us", "p90_us", "p99_us", "mean_us", "min_us", "n"}
    for key in ("p50_us", "p90_us", "p99_us", "mean_us", "min_us"):
        assert math.isfinite(d[key]) and d[key] > 0, (key, d)
    assert d["min_us"] <= d["p50_us"] <= d["p90_us"] <= d["p99_us"]
    assert d["n"] == 20


def _check_cold(d: dict) -> None:
    for key in ("seconds", "bare_seconds", "ratio_to_bare", "peak_rss_mib", "bare_peak_rss_mib"):
        assert math.isfinite(d[key]) and d[key] > 0, (key, d)
    assert len(d["runs"]) == 1


def test_json_figures_for_every_variant(lstm):
    bundle, _ = lstm
    d = _bench_json(bundle)
    assert d["bundle"] == str(bundle)
    assert d["settings"] == {"threads": 1, "batch": 4, "length": 6, "repeat": 20, "cold_runs": 1, "seed": 0}
    assert d["model"]["cell"] == "lstm" and d["model"]["num_layers"] == 2
    assert {"cpu", "onnxruntime", "python"} <= set(d["machine"])
    by_name = {v["name"]: v for v in d["variants"]}
    assert {"onnx-window-fp32", "onnx-step-fp32"} <= set(by_name)

    window = by_name["onnx-window-fp32"]
    assert window["graph"] == "window" and window["step"] is None and window["size_bytes"] > 0
    assert window["window"]["length"] == 6 and window["window"]["batch"] == 4
    _check_latency(window["window"]["batch1"])
    _check_latency(window["window"]["batched"])
    assert window["window"]["windows_per_s"] > 0

    step = by_name["onnx-step-fp32"]
    assert step["graph"] == "step" and step["window"] is None
    for key in ("raw", "api", "onnxruntime"):
        _check_latency(step["step"][key])
    assert step["step"]["steps_per_s"] > 0

    for v in d["variants"]:
        _check_cold(v["cold_start"])
        assert v["vs_pytorch"] is None and v["vs_torch_onnx_export"] is None
    _check_cold(d["cli_cold_start"])
    assert d["pytorch"] is None and d["torch_onnx_export"] is None


def test_checkpoint_adds_pytorch_and_plain_export(gru):
    bundle, run = gru
    d = _bench_json(bundle, "--checkpoint", run, "--cold-runs", "0")
    _check_latency(d["pytorch"]["window"]["batch1"])
    _check_latency(d["pytorch"]["window"]["batched"])
    _check_latency(d["pytorch"]["step"])
    _check_latency(d["torch_onnx_export"]["step"])
    assert d["torch_onnx_export"]["size_bytes"] > 0
    by_name = {v["name"]: v for v in d["variants"]}
    for key in ("vs_pytorch", "vs_pytorch_batched"):
        assert by_name["onnx-window-fp32"][key] > 0
    for key in ("vs_pytorch", "vs_torch_onnx_export"):
        assert by_name["onnx-step-fp32"][key] > 0
    assert all(v["cold_start"] is None for v in d["variants"]) and d["cli_cold_start"] is None


def test_checkpoint_of_another_model_is_refused(lstm, gru):
    bundle, _ = lstm
    _, other_run = gru
    result = CliRunner().invoke(cli, ["bench", *QUICK, str(bundle), "--checkpoint", str(other_run), "--cold-runs", "0"])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {other_run}: not the bundle's model (cell 'gru' vs 'lstm'")
    assert result.stderr.count("\n") == 1


def test_text_table_names_every_variant_and_reference(gru):
    bundle, run = gru
    result = CliRunner().invoke(cli, ["bench", str(bundle), "--checkpoint", str(run), *QUICK])
    assert result.exit_code == 0, result.output
    for text in ("onnx-window-fp32", "onnx-step-fp32", "pytorch", "plain torch.onnx.export",
                 "edgernn run (CLI)", "bare script", "vs torch"):
        assert text in result.stdout


def test_one_variant_and_a_bare_onnx_file(lstm):
    bundle, _ = lstm
    d = _bench_json(bundle, "--variant", "onnx-step-fp32", "--cold-runs", "0")
    assert [v["name"] for v in d["variants"]] == ["onnx-step-fp32"]
    d = _bench_json(bundle / "model.onnx")
    assert [v["graph"] for v in d["variants"]] == ["window"]
    _check_cold(d["variants"][0]["cold_start"])
    assert d["cli_cold_start"] is None  # only for bundles


def test_bad_bundle_path_is_one_line_and_exit_2(tmp_path):
    missing = tmp_path / "nope"
    result = CliRunner().invoke(cli, ["bench", str(missing)])
    assert result.exit_code == 2
    assert result.stderr == f"error: {missing}: no such bundle directory or model file\n"


def test_unknown_variant_and_bad_options(lstm):
    bundle, _ = lstm
    result = CliRunner().invoke(cli, ["bench", str(bundle), "--variant", "onnx-window-fp64"])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: no variant 'onnx-window-fp64' in this bundle; it has: onnx-window-fp32, ")
    assert result.stderr.count("\n") == 1
    result = CliRunner().invoke(cli, ["bench", str(bundle), "--threads", "0"])
    assert result.exit_code == 2 and result.stderr == "error: --threads must be at least 1, got 0\n"


def test_bench_without_checkpoint_imports_no_torch(lstm):
    bundle, _ = lstm
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from edgernn.cli import cli\n"
        f"r = CliRunner().invoke(cli, ['bench', {str(bundle)!r}, '--repeat', '5', '--cold-runs', '1', '--json'])\n"
        "assert r.exit_code == 0, r.output\n"
        "from edgernn.bench import bench, BenchSettings\n"
        f"bench({str(bundle)!r}, settings=BenchSettings(repeat=5, cold_runs=0))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'tensorflow')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_cold_start_child_reports_time_and_its_own_peak_rss():
    from edgernn.bench.coldstart import PEAK_RSS_AT_EXIT

    seconds, peak = time_to_first_line([sys.executable, "-c", PEAK_RSS_AT_EXIT + "print('ready')"])
    assert seconds > 0 and peak is not None and peak > 0
    with pytest.raises(CheckFailedError, match=r"cold start process failed \(exit 3\): ValueError: broken"):
        time_to_first_line([sys.executable, "-c", "raise SystemExit(__import__('sys').stderr.write("
                            "'ValueError: broken\\n') and 3)"])


def test_latency_percentiles_are_ordered():
    rng = np.random.default_rng(0)
    for _ in range(20):
        lat = Latency.from_ns(rng.exponential(1e4, size=rng.integers(1, 300)))
        assert lat.min_us <= lat.p50_us <= lat.p90_us <= lat.p99_us
    calls = []
    lat = measure(lambda: calls.append(1), repeat=7)
    assert lat.n == 7 and len(calls) >= 17  # warm-up calls come first


def test_settings_are_checked():
    with pytest.raises(BadInputError, match="--batch must be at least 1, got 0"):
        BenchSettings(batch=0)
    with pytest.raises(BadInputError, match="--cold-runs must be 0 or more"):
        BenchSettings(cold_runs=-1)


def test_python_api_returns_a_report(gru):
    bundle, _ = gru
    report = bench(bundle, settings=BenchSettings(repeat=10, cold_runs=0, batch=3))
    assert {"window", "step"} <= {v.graph for v in report.variants}
    window = next(v for v in report.variants if v.graph == "window")
    assert window.window.batched.n == 10 and window.window.batch == 3
    d = json.loads(json.dumps(report.to_dict()))
    assert next(v for v in d["variants"] if v["graph"] == "step")["step"]["raw"]["n"] == 10
