"""Resume: a run interrupted after an epoch goes on from there and ends as an uninterrupted run does."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from tl_desktop.config import (
    ConfigError,
    DataConfig,
    ModelConfig,
    RunConfig,
    TrainConfig,
)
from tl_desktop.engine.runtime.stop import StopToken
from tl_desktop.engine.training.callbacks import Callback
from tl_desktop.engine.training.events import EpochEnded, PhaseStarted
from tl_desktop.engine.training.resume import (
    capture_rng,
    load_resume_state,
    restore_rng,
)
from tl_desktop.engine.training.runfolder import RunFolder
from tl_desktop.engine.training.trainer import Trainer


class StopAfterEpoch(Callback):
    """Requests a stop once epoch ``epoch`` has ended (the run stops at the next batch)."""

    def __init__(self, stop: StopToken, epoch: int) -> None:
        self.stop, self.epoch = stop, epoch

    def on_event(self, event) -> None:
        if isinstance(event, EpochEnded) and event.epoch == self.epoch:
            self.stop.request()


class Recorder(Callback):
    def __init__(self) -> None:
        self.events: list = []

    def on_event(self, event) -> None:
        self.events.append(event)


def _config(root: Path, out: Path, augmentation: str, patience: int = 0) -> RunConfig:
    return RunConfig(
        data=DataConfig(root=str(root)), out_dir=str(out),
        model=ModelConfig(backbone="tiny_cnn", trainable_blocks=1, dropout=0.2),
        train=TrainConfig(epochs=4, head_epochs=2, batch_size=5, augmentation=augmentation, cached_views=2,
                          early_stopping_patience=patience),
    )


def _trainer(config: RunConfig, use_caches: bool, **kwargs) -> Trainer:
    trainer = Trainer(config, **kwargs)
    trainer.use_caches = use_caches
    return trainer


@pytest.mark.parametrize(("use_caches", "augmentation", "stop_after"),
                         [(True, "light", 1), (True, "light", 3), (False, "light", 2), (False, "strong", 3)])
def test_a_resumed_run_ends_as_an_uninterrupted_one(tiny_backbone, make_image_folder, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch, use_caches, augmentation,
                                                     stop_after) -> None:
    monkeypatch.setenv("TL_DESKTOP_CACHE_DIR", str(tmp_path / "cache"))
    root = make_image_folder(tmp_path, classes={"a": 8, "b": 8, "c": 7}, size=40)
    config = _config(root, tmp_path / "runs", augmentation)
    whole = _trainer(config, use_caches).fit()
    assert whole.status == "completed"
    assert not RunFolder(whole.run_dir).resume_file.exists()  # a completed run keeps no resume point

    stop = StopToken()
    cut = _trainer(config, use_caches, callbacks=[StopAfterEpoch(stop, stop_after)], stop=stop).fit()
    assert cut.status == "stopped" and cut.history[-1].epoch == stop_after
    assert load_resume_state(RunFolder(cut.run_dir).resume_file).epoch == stop_after

    recorder = Recorder()
    resumed = _trainer(RunFolder(cut.run_dir).config(), use_caches, run_dir=cut.run_dir, resume=True,
                       callbacks=[recorder]).fit()
    assert resumed.status == "completed"
    assert [e.epoch for e in recorder.events if isinstance(e, EpochEnded)] == list(range(stop_after + 1, 5))
    # a phase resumed in its middle is not announced again (early stopping's count would restart)
    assert all(p.first_epoch > stop_after for p in recorder.events if isinstance(p, PhaseStarted))
    assert [round(e.val_loss, 5) for e in resumed.history] == [round(e.val_loss, 5) for e in whole.history]
    assert resumed.best_epoch == whole.best_epoch
    expected = load_file(str(whole.run_dir / "best.safetensors"))
    got = load_file(str(resumed.run_dir / "best.safetensors"))
    for name, tensor in expected.items():
        torch.testing.assert_close(got[name], tensor, rtol=1e-4, atol=1e-5)
    assert resumed.model_path is not None and resumed.model_path.is_file()
    assert not RunFolder(cut.run_dir).resume_file.exists()


def test_early_stopping_counts_on_across_a_resume(tiny_backbone, make_image_folder, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TL_DESKTOP_CACHE_DIR", str(tmp_path / "cache"))
    root = make_image_folder(tmp_path, classes={"a": 8, "b": 8, "c": 7}, size=40)
    config = _config(root, tmp_path / "runs", "none", patience=3)  # too patient to stop 2-epoch phases
    stop = StopToken()
    cut = Trainer(config, callbacks=[StopAfterEpoch(stop, 3)], stop=stop).fit()
    state = load_resume_state(RunFolder(cut.run_dir).resume_file)
    assert state.callbacks["early_stopping"]["wait"] == cut_wait(cut.history)
    assert state.trainer["best"][0] == cut.best_epoch


def cut_wait(history) -> int:
    """Epochs since the last improvement in the current phase (the early-stopping count), computed here."""
    wait, best = 0, None
    for e in history:
        if e.epoch == 3:  # the fine-tuning phase starts at epoch 3: the count restarts
            wait = 0
        if best is None or (e.val_accuracy, -e.val_loss) > best:
            best, wait = (e.val_accuracy, -e.val_loss), 0
        else:
            wait += 1
    return wait


def test_random_generators_come_back_exactly(tmp_path: Path) -> None:
    generator = torch.Generator().manual_seed(5)
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    state = capture_rng(generator)
    first = (random.random(), np.random.rand(), torch.rand(1).item(), torch.rand(1, generator=generator).item())
    restore_rng(state, generator)
    again = (random.random(), np.random.rand(), torch.rand(1).item(), torch.rand(1, generator=generator).item())
    assert first == again


def test_resuming_a_run_without_a_resume_point_says_so(tiny_backbone, make_image_folder, tmp_path: Path) -> None:
    root = make_image_folder(tmp_path, classes={"a": 6, "b": 6}, size=40)
    done = Trainer(_config(root, tmp_path / "runs", "none")).fit()
    result = Trainer(RunFolder(done.run_dir).config(), run_dir=done.run_dir, resume=True).fit()
    assert result.status == "failed"
    with pytest.raises(ConfigError, match="has no resume point"):
        load_resume_state(RunFolder(done.run_dir).resume_file)


def test_a_damaged_resume_point_is_refused_with_a_message(tmp_path: Path) -> None:
    (tmp_path / "resume.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    with pytest.raises(ConfigError, match="is damaged"):
        load_resume_state(tmp_path / "resume.safetensors")
