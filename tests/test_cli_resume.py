"""Kill a real training process at several moments, resume it, and get the uninterrupted result;
SIGTERM and a second Ctrl-C stop cleanly without a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file


@pytest.fixture(scope="module")
def launcher(tiny_launcher) -> Path:
    return tiny_launcher


def run_cli(launcher: Path, *args: str, moment: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "TL_DESKTOP_CACHE_DIR": str(launcher.parent / "cache"),
           **({"TL_TEST_SIGNAL_AT": moment} if moment else {})}
    return subprocess.run([sys.executable, str(launcher), *args], capture_output=True, text=True, timeout=180,
                          env=env)


def train_args(root: Path, out: Path) -> list[str]:
    return ["train", "--data", str(root), "--backbone", "tiny_cnn", "--trainable-blocks", "1", "--epochs", "4",
            "--head-epochs", "2", "--batch-size", "4", "--augmentation", "light", "--out", str(out)]


def _only_run(out: Path) -> Path:
    runs = list(out.iterdir())
    assert len(runs) == 1, runs
    return runs[0]


@pytest.fixture(scope="module")
def reference(launcher, tmp_path_factory, make_image_folder):
    """An uninterrupted run (trained once for this module): its image folder, run folder and best weights."""
    work = tmp_path_factory.mktemp("reference")
    root = make_image_folder(work, classes={"a": 8, "b": 8}, size=40)
    done = run_cli(launcher, *train_args(root, work / "whole"))
    assert done.returncode == 0, done.stderr
    run = _only_run(work / "whole")
    return root, run, load_file(str(run / "best.safetensors"))


@pytest.mark.parametrize("moment", [
    "EpochStarted:2:0:SIGKILL",  # right after the first epoch's resume point
    "EpochStarted:4:0:SIGKILL",  # inside the fine-tuning phase
    "BatchEnded:3:2:SIGKILL",  # in the middle of an epoch
])
def test_a_killed_run_resumes_to_the_uninterrupted_result(launcher, tmp_path, reference, moment):
    root, _run, expected = reference
    killed = run_cli(launcher, *train_args(root, tmp_path / "runs"), moment=moment)
    assert killed.returncode == -9
    run = _only_run(tmp_path / "runs")
    assert not (run / "model.tlmodel").exists() and (run / "resume.safetensors").is_file()

    resumed = run_cli(launcher, "train", "--resume", str(run))
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming after epoch" in resumed.stdout
    assert (run / "model.tlmodel").is_file() and not (run / "resume.safetensors").exists()
    got = load_file(str(run / "best.safetensors"))
    for name, tensor in expected.items():
        torch.testing.assert_close(got[name], tensor, rtol=1e-4, atol=1e-5)


def test_sigterm_stops_cleanly_keeps_the_best_model_and_exits_143(launcher, tmp_path, reference):
    root = reference[0]
    result = run_cli(launcher, *train_args(root, tmp_path / "runs"), moment="BatchEnded:2:1:SIGTERM")
    assert result.returncode == 143, result.stderr
    assert "Traceback" not in result.stderr and "--resume" in result.stderr
    run = _only_run(tmp_path / "runs")
    assert (run / "model.tlmodel").is_file()  # the best model of epoch 1
    assert '"status": "stopped"' in (run / "events.jsonl").read_text(encoding="utf-8").splitlines()[-1]


def test_a_second_ctrl_c_aborts_at_once_without_a_traceback(launcher, tmp_path, reference):
    root = reference[0]
    result = run_cli(launcher, *train_args(root, tmp_path / "runs"), moment="BatchEnded:2:1:SIGINT:SIGINT")
    assert result.returncode == 130, result.stderr
    assert "Traceback" not in result.stderr
    assert "Aborted at once" in result.stderr and "--resume" in result.stderr


def test_resume_refuses_new_settings_and_runs_without_a_resume_point(launcher, tmp_path, reference):
    run = reference[1]  # completed: it has no resume point
    changed = run_cli(launcher, "train", "--resume", str(run), "--epochs", "9")
    assert changed.returncode == 2 and "leave out --epochs" in changed.stderr
    finished = run_cli(launcher, "train", "--resume", str(run))
    assert finished.returncode == 2 and "has no resume point" in finished.stderr
    nowhere = run_cli(launcher, "train", "--resume", str(tmp_path))
    assert nowhere.returncode == 2 and "is not a run folder" in nowhere.stderr
