"""Training under torchrun: 2 CPU processes with gloo train the head 1 process trains, only rank 0 writes
the run folder, a failing rank ends every rank and is named, and Ctrl-C on the launcher stops every rank.

The ranks run a small launcher script (the tiny test backbone must be registered in each process) in
place of ``-m tl_desktop``: ``python -m torch.distributed.run --nproc-per-node 2 launcher.py train ...``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch.utils.data import BatchSampler, SequentialSampler

from tl_desktop.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from tl_desktop.engine.training.batch_sources import RankBatches
from tl_desktop.engine.training.distributed import Ranks, ranks_from_env

ENGINE_CONFTEST = Path(__file__).parent / "conftest.py"

# Registers the tiny backbone; by environment, fails one rank at an epoch or slows every training
# batch; records each rank's exit code.
LAUNCHER = """
import importlib.util, os, sys, time
import torch
from safetensors.torch import save_file

spec = importlib.util.spec_from_file_location("tiny_backbone_conftest", {conftest!r})
tiny = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tiny)
from tl_desktop.engine.models.backbones import register_backbone
from tl_desktop.engine.training import cached_sources

weights = os.path.join({folder!r}, "tiny-" + os.environ.get("RANK", "single") + ".safetensors")
torch.manual_seed(1234)
save_file({{k: v.contiguous() for k, v in tiny.build_tiny_cnn().source.state_dict().items()}}, weights)
register_backbone(tiny.TINY_SPEC, tiny.build_tiny_cnn, bundled=lambda: weights)

original = cached_sources.FeatureBatches.__iter__
fail_rank, fail_epoch = os.environ.get("TL_TEST_FAIL_RANK"), int(os.environ.get("TL_TEST_FAIL_EPOCH", "0"))
pause = float(os.environ.get("TL_TEST_BATCH_PAUSE", "0"))

def patched(self):
    training = isinstance(self.order.sampler, torch.utils.data.RandomSampler)
    if training and fail_rank == os.environ.get("RANK") and self.epoch + 1 == fail_epoch:
        raise RuntimeError("simulated disk failure on this process")
    for batch in original(self):
        if training:
            time.sleep(pause)
        yield batch

cached_sources.FeatureBatches.__iter__ = patched

from tl_desktop.cli import main
code = main(sys.argv[1:])
exits = os.environ.get("TL_TEST_EXIT_DIR")
if exits:
    with open(os.path.join(exits, "rank" + os.environ.get("RANK", "single")), "w") as handle:
        handle.write(str(code))
sys.exit(code)
"""


@pytest.fixture(scope="module")
def launcher(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ddp_launcher")
    script = folder / "tl_desktop_ranks.py"
    script.write_text(LAUNCHER.format(conftest=str(ENGINE_CONFTEST), folder=str(folder)))
    return script


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rank_env(work: Path, **extra: str) -> dict[str, str]:
    exits = work / "exits"
    exits.mkdir(parents=True, exist_ok=True)
    return {**os.environ, "TL_DESKTOP_CACHE_DIR": str(work / "cache"), "OMP_NUM_THREADS": "1",
            "TL_DESKTOP_INFERENCE": "torch", "TL_TEST_EXIT_DIR": str(exits), **extra}


def torchrun(launcher: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port",
            str(free_port()), str(launcher), *args]


def exit_codes(work: Path) -> dict[str, int]:
    return {p.name: int(p.read_text()) for p in sorted((work / "exits").iterdir())}


def write_config(work: Path, root: Path, epochs: int = 3) -> Path:
    """Head only, augmented cached views (2, so the ranks share the views), imbalanced classes (so the
    loss weights classes), dropout off (its masks are drawn per process)."""
    config = RunConfig(data=DataConfig(root=str(root), val_fraction=0.25, test_fraction=0.2),
                       model=ModelConfig(backbone="tiny_cnn", trainable_blocks=0, dropout=0.0),
                       train=TrainConfig(epochs=epochs, head_epochs=epochs, batch_size=5, augmentation="light",
                                         cached_views=2, early_stopping_patience=0, seed=3),
                       out_dir=str(work / "runs"))
    path = work / "run.json"
    config.save(path)
    return path


def only_run(out: Path) -> Path:
    runs = list(out.iterdir())
    assert len(runs) == 1, runs
    return runs[0]


def events(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "events.jsonl").read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def images(tmp_path_factory, make_image_folder) -> Path:
    return make_image_folder(tmp_path_factory.mktemp("ddp_images"), classes={"a": 12, "b": 7}, size=32)


def test_two_processes_train_the_head_one_process_trains_and_only_rank_0_writes(launcher, images, tmp_path):
    single, double = tmp_path / "single", tmp_path / "double"
    one = subprocess.run([sys.executable, str(launcher), "train", "--config", str(write_config(single, images))],
                         capture_output=True, text=True, timeout=180, env=rank_env(single))
    assert one.returncode == 0, one.stderr
    two = subprocess.run(torchrun(launcher, "train", "--config", str(write_config(double, images))),
                         capture_output=True, text=True, timeout=240, env=rank_env(double))
    assert two.returncode == 0, two.stderr[-3000:]
    assert exit_codes(double) == {"rank0": 0, "rank1": 0}

    run_one, run_two = only_run(single / "runs"), only_run(double / "runs")  # rank 1 made no folder
    assert sorted(p.name for p in run_two.iterdir()) == sorted(p.name for p in run_one.iterdir())
    logged = events(run_two)
    assert [e["event"] for e in logged].count("FitStarted") == 1 and logged[-1]["event"] == "FitEnded"
    assert two.stdout.count("Training finished") == 1  # only rank 0 speaks

    head_one, head_two = load_file(str(run_one / "best.safetensors")), load_file(str(run_two / "best.safetensors"))
    for name in ("head.1.weight", "head.1.bias"):
        torch.testing.assert_close(head_two[name], head_one[name], rtol=1e-4, atol=1e-5)
    curves = [[(e["train_loss"], e["val_loss"], e["val_accuracy"]) for e in events(run) if e["event"] == "EpochEnded"]
              for run in (run_one, run_two)]
    assert len(curves[0]) == 3
    for ours, theirs in zip(*curves):
        assert ours == pytest.approx(theirs, rel=1e-4, abs=1e-6)  # metrics reduced over the ranks


def test_a_failing_rank_ends_every_rank_and_rank_0_names_it(launcher, images, tmp_path):
    config = write_config(tmp_path, images, epochs=4)
    done = subprocess.run(torchrun(launcher, "train", "--config", str(config)), capture_output=True, text=True,
                          timeout=240, env=rank_env(tmp_path, TL_TEST_FAIL_RANK="1", TL_TEST_FAIL_EPOCH="2"))
    assert done.returncode != 0
    assert exit_codes(tmp_path) == {"rank0": 1, "rank1": 1}
    ended = events(only_run(tmp_path / "runs"))[-1]
    assert ended["event"] == "FitEnded" and ended["status"] == "failed"
    assert ended["error"].startswith("rank 1 of 2 failed:") and "simulated disk failure" in ended["error"]
    assert ended["epochs_completed"] == 1
    assert "Training failed" in done.stderr and "rank 1 of 2 failed" in done.stderr


def test_ctrl_c_on_the_launcher_stops_every_rank_with_130_and_keeps_the_best_model(launcher, images, tmp_path,
                                                                                    tiny_backbone):
    from tl_desktop.engine.models.bundle import load_bundle

    config = write_config(tmp_path, images, epochs=40)
    process = subprocess.Popen(torchrun(launcher, "train", "--config", str(config)), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=rank_env(tmp_path, TL_TEST_BATCH_PAUSE="0.1"))
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            runs = list((tmp_path / "runs").glob("*/events.jsonl"))
            if runs and '"EpochEnded"' in runs[0].read_text(encoding="utf-8"):
                break
            assert process.poll() is None, process.communicate()
            time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        _out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert exit_codes(tmp_path) == {"rank0": 130, "rank1": 130}, err[-3000:]
    run = only_run(tmp_path / "runs")
    ended = events(run)[-1]
    assert ended["event"] == "FitEnded" and ended["status"] == "stopped", ended
    assert 1 <= ended["epochs_completed"] < 40
    loaded = load_bundle(run / "model.tlmodel")
    assert loaded.meta.classes == ["a", "b"] and loaded.meta.metrics["best_epoch"] == ended["best_epoch"]


def test_ranks_come_from_torchruns_environment_and_share_batches_exactly():
    assert ranks_from_env({}) == Ranks()
    assert ranks_from_env({"RANK": "1", "WORLD_SIZE": "3", "LOCAL_RANK": "1"}) == Ranks(1, 3, 1)
    with pytest.raises(Exception, match="inconsistent: RANK=3, WORLD_SIZE=2"):
        ranks_from_env({"RANK": "3", "WORLD_SIZE": "2", "LOCAL_RANK": "0"})
    for count in (0, 1, 5, 7, 12):
        shares = [Ranks(rank, 3).share(list(range(count))) for rank in range(3)]
        assert sum(shares, []) == list(range(count)) and max(map(len, shares)) - min(map(len, shares)) <= 1
    # a last global batch with fewer images than ranks is left out, so no rank ever has an empty step
    batches = RankBatches(BatchSampler(SequentialSampler(range(9)), 4, drop_last=False), Ranks(1, 2))
    assert list(batches) == [[2, 3], [6, 7]] and len(batches) == 2
