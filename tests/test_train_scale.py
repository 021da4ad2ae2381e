"""Training that scales: device and precision options, resume, and DDP under torchrun (gloo, 2 processes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from edgernn.checkpoint import load_checkpoint
from edgernn.datasource import DataSource
from edgernn.errors import BadInputError
from edgernn.nn.device import Precision, resolve_device
from edgernn.nn.train import TrainConfig, train
from helpers import invoke

ROOT = Path(__file__).resolve().parents[1]
no_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def max_abs_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float(np.abs(np.asarray(a[k], np.float64) - np.asarray(b[k], np.float64)).max()) for k in a)


# ---- device and precision ------------------------------------------------------------------


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_asking_for_cuda_without_cuda_is_one_line_bad_input(tmp_path):
    with pytest.raises(BadInputError, match=r"^--device cuda:1: CUDA is not available \("):
        resolve_device("cuda:1")
    result = invoke("train", "--task", "sum", "--samples", 100, "--epochs", 1, "--device", "cuda",
                    "--out", tmp_path / "run", "--quiet")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: --device cuda: CUDA is not available (")
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_device_names():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == (torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu"))
    with pytest.raises(BadInputError, match="expected one of auto, cpu, cuda, cuda:N, mps, got 'gpu'"):
        resolve_device("gpu")


def test_fp16_on_cpu_is_refused_and_bf16_is_not():
    with pytest.raises(BadInputError, match="fp16 needs a CUDA or MPS device"):
        Precision("fp16", torch.device("cpu"))
    assert not Precision("bf16", torch.device("cpu")).grad_scaler().is_enabled()


def test_bf16_on_cpu_trains_and_the_checkpoint_is_fp32(tmp_path):
    out = tmp_path / "run"
    result = train(DataSource(task="sum", n=200), TrainConfig(epochs=2, hidden_size=8, precision="bf16",
                                                               device="cpu"), out, progress=False)
    ckpt = load_checkpoint(out)
    assert all(w.dtype == np.float32 and np.isfinite(w).all() for w in ckpt.weights.values())
    assert max_abs_diff(ckpt.weights, result.weights) == 0.0
    hardware = json.loads((out / "metrics.json").read_text())["hardware"]
    assert hardware["precision"] == "bf16" and hardware["device"].startswith("cpu (")
    assert hardware["processes"] == 1 and hardware["samples_per_s"] > 0
    assert ckpt.config["precision"] == "bf16" and ckpt.config["device"] == "cpu"
    # bf16 autocast really changed the arithmetic: fp32 training from the same seed ends elsewhere.
    fp32 = train(DataSource(task="sum", n=200), TrainConfig(epochs=2, hidden_size=8), tmp_path / "fp32",
                 progress=False)
    assert max_abs_diff(fp32.weights, result.weights) > 1e-4


# ---- resume ----------------------------------------------------------------------------------

RESUME_OPTIONS = ["--task", "bands", "--samples", 240, "--cell", "lstm", "--hidden", 8, "--layers", 2,
                  "--dropout", 0.3, "--batch-size", 16, "--patience", 100, "--quiet"]


def test_an_interrupted_run_resumed_reaches_the_same_weights(tmp_path, monkeypatch):
    straight = tmp_path / "straight"
    assert invoke("train", *RESUME_OPTIONS, "--epochs", 5, "--out", straight).exit_code == 0

    import edgernn.nn.fit as fit_module

    real_save = fit_module.save_resume

    def save_then_crash(run_dir, state):
        real_save(run_dir, state)
        if state.epoch == 2:
            raise KeyboardInterrupt  # as if the machine went away after epoch 2

    monkeypatch.setattr(fit_module, "save_resume", save_then_crash)
    run = tmp_path / "run"
    interrupted = invoke("train", *RESUME_OPTIONS, "--epochs", 5, "--out", run)
    assert interrupted.exit_code == 130
    assert sorted(p.name for p in run.iterdir()) == ["resume.pt"]  # no checkpoint: the run did not finish
    monkeypatch.setattr(fit_module, "save_resume", real_save)

    # Scramble every random state the resumed epochs depend on (dropout, shuffles): resume must restore them.
    torch.manual_seed(12345), np.random.seed(12345)
    resumed = invoke("train", "--resume", run, "--quiet", "--json")
    assert resumed.exit_code == 0, resumed.output
    a, b = load_checkpoint(straight), load_checkpoint(run)
    assert max_abs_diff(a.weights, b.weights) == 0.0
    assert [h["epoch"] for h in json.loads((run / "checkpoint.json").read_text())["history"]] == [1, 2, 3, 4, 5]
    assert json.loads((run / "checkpoint.json").read_text())["history"] == \
        json.loads((straight / "checkpoint.json").read_text())["history"]


def test_a_finished_run_resumed_with_more_epochs_equals_the_longer_run(tmp_path):
    short, long = tmp_path / "short", tmp_path / "long"
    assert invoke("train", *RESUME_OPTIONS, "--epochs", 2, "--out", short).exit_code == 0
    assert invoke("train", "--resume", short, "--epochs", 4, "--quiet").exit_code == 0
    assert invoke("train", *RESUME_OPTIONS, "--epochs", 4, "--out", long).exit_code == 0
    assert max_abs_diff(load_checkpoint(short).weights, load_checkpoint(long).weights) == 0.0
    assert load_checkpoint(short).metrics["epochs_run"] == 4


def test_resume_refuses_changed_options_and_missing_state(tmp_path):
    result = invoke("train", "--resume", tmp_path, "--cell", "gru", "--quiet")
    assert result.exit_code == 2
    assert result.stderr == ("error: --resume continues the run with the options it was started with; drop --cell "
                             "(only --epochs, --device, --precision, --workers and --threads may change)\n")
    result = invoke("train", "--resume", tmp_path, "--quiet")
    assert result.exit_code == 2 and "no resume.pt there" in result.stderr


def test_resume_state_is_read_without_unpickling(tmp_path):
    """A resume.pt holding a pickled object (not tensors and plain values) is refused, not executed."""
    import fractions

    torch.save({"format": "edgernn-resume/1", "epoch": fractions.Fraction(1, 3)}, tmp_path / "resume.pt")
    result = invoke("train", "--resume", tmp_path, "--quiet")
    assert result.exit_code == 2 and "not a readable edgernn resume state (UnpicklingError" in result.stderr


# ---- DDP under torchrun -----------------------------------------------------------------------

DDP_OPTIONS = ["--task", "bands", "--samples", 300, "--hidden", 8, "--epochs", 3, "--batch-size", 32,
               "--threads", 1, "--quiet", "--device", "cpu"]


def torchrun(nproc: int, *args, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
               OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
               "-m", "edgernn", *map(str, args)]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, cwd=ROOT)


@pytest.mark.slow
def test_ddp_two_processes_match_one_process_and_the_bundle_validates(tmp_path):
    from edgernn.export import export_checkpoint

    ddp_run, one_run = tmp_path / "ddp", tmp_path / "one"
    done = torchrun(2, "train", *DDP_OPTIONS, "--out", ddp_run, "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    reported = json.loads(done.stdout)  # rank 0 alone prints
    assert reported["hardware"]["processes"] == 2 and reported["samples"]["train"] % 2 == 0
    assert invoke("train", *DDP_OPTIONS, "--out", one_run).exit_code == 0
    ddp, one = load_checkpoint(ddp_run), load_checkpoint(one_run)
    assert ddp.metrics["epochs_run"] == one.metrics["epochs_run"] == 3
    assert max_abs_diff(ddp.weights, one.weights) <= 1e-5
    history = lambda run: json.loads((run / "checkpoint.json").read_text())["history"]  # noqa: E731
    for h_ddp, h_one in zip(history(ddp_run), history(one_run)):
        assert h_ddp["val_loss"] == pytest.approx(h_one["val_loss"], rel=1e-5)
        assert h_ddp["train_loss"] == pytest.approx(h_one["train_loss"], rel=1e-5)
    exported = export_checkpoint(ddp_run, tmp_path / "bundle")
    assert exported.reports and all(r.passed for r in exported.reports)
    validated = invoke("validate", tmp_path / "bundle", "--checkpoint", ddp_run, "--json")
    assert validated.exit_code == 0, validated.output
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.slow
def test_ddp_error_ends_every_rank_with_the_one_line_error(tmp_path):
    done = torchrun(2, "train", "--task", "nope", "--out", tmp_path / "run", timeout=90)
    assert done.returncode != 0
    assert done.stderr.count("error: unknown task 'nope'") == 2  # each rank says it once, then exits
    assert not (tmp_path / "run").exists()


# ---- GPU (skipped without CUDA) -------------------------------------------------------------------


@no_cuda
@pytest.mark.parametrize("precision", ["bf16", "fp16", "fp32"])
def test_cuda_training_writes_an_fp32_cpu_checkpoint(tmp_path, precision):
    out = tmp_path / "run"
    train(DataSource(task="sum", n=300), TrainConfig(epochs=2, hidden_size=16, device="cuda", precision=precision),
          out, progress=False)
    ckpt = load_checkpoint(out)
    assert all(w.dtype == np.float32 and np.isfinite(w).all() for w in ckpt.weights.values())
    hardware = ckpt.metrics["hardware"]
    assert hardware["device"].startswith("cuda:0 (") and hardware["precision"] == precision


@no_cuda
def test_cuda_resume_reaches_the_same_weights(tmp_path):
    options = [*RESUME_OPTIONS, "--device", "cuda"]
    assert invoke("train", *options, "--epochs", 2, "--out", tmp_path / "short").exit_code == 0
    assert invoke("train", "--resume", tmp_path / "short", "--epochs", 3, "--device", "cuda", "--quiet").exit_code == 0
    assert invoke("train", *options, "--epochs", 3, "--out", tmp_path / "long").exit_code == 0
    diff = max_abs_diff(load_checkpoint(tmp_path / "short").weights, load_checkpoint(tmp_path / "long").weights)
    assert diff <= 1e-6  # cuDNN RNN kernels are deterministic for a fixed configuration


# ---- the sampler -----------------------------------------------------------------------------------


def test_sharded_shuffle_deals_each_epochs_order_over_ranks():
    from edgernn.nn.distributed import World
    from edgernn.nn.fit import ShardedShuffle

    n, seed = 11, 5
    generator = torch.Generator().manual_seed(seed)
    expected = [torch.randperm(n, generator=generator).tolist() for _ in range(3)]  # epoch e: the e-th draw
    one = ShardedShuffle(n, World(), seed)
    for epoch in (1, 2, 3):
        one.set_epoch(epoch)
        assert list(one) == expected[epoch - 1]
    resumed = ShardedShuffle(n, World(), seed)  # a fresh process resuming at epoch 3 replays the draws
    resumed.set_epoch(3)
    assert list(resumed) == expected[2]
    ranks = [ShardedShuffle(n, World(rank=r, size=2, local_rank=r), seed) for r in range(2)]
    for s in ranks:
        s.set_epoch(2)
    shares = [list(s) for s in ranks]
    assert len(shares[0]) == len(shares[1]) == 6  # padded with the order's first sample
    padded = expected[1] + expected[1][:1]
    assert shares == [padded[0::2], padded[1::2]]
    # With a global batch of 4 (2 per rank), step k of the two ranks together is the single process's batch k.
    for k in range(2):
        together = sorted(shares[0][2 * k : 2 * k + 2] + shares[1][2 * k : 2 * k + 2])
        assert together == sorted(expected[1][4 * k : 4 * k + 4])


@pytest.mark.slow
def test_ctrl_c_under_torchrun_ends_every_rank_and_keeps_the_resume_state(tmp_path):
    import signal
    import time

    out = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
               OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "edgernn",
               "train", *map(str, DDP_OPTIONS), "--epochs", "1000", "--patience", "1000", "--out", str(out)]
    launcher = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while not (out / "resume.pt").exists():  # training is under way
            assert launcher.poll() is None and time.monotonic() < deadline, "training did not start"
            time.sleep(0.2)
        ranks = subprocess.run(["pgrep", "-P", str(launcher.pid)], capture_output=True, text=True).stdout.split()
        assert len(ranks) == 2
        launcher.send_signal(signal.SIGINT)  # what Ctrl-C in the terminal sends
        _, stderr = launcher.communicate(timeout=60)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert launcher.returncode != 0
    assert stderr.splitlines().count("interrupted") == 2  # each rank, one line
    assert [r for r in ranks if Path(f"/proc/{r}").exists()] == []
    assert sorted(p.name for p in out.iterdir()) == ["resume.pt"]  # no half-written run; resumable
