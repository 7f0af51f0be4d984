"""The trainer: event order for completed, stopped and failed fits; checkpoints; recipe pieces; seeds."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tl_desktop.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from tl_desktop.engine.data.dataset import scan_dataset
from tl_desktop.engine.runtime.stop import StopToken
from tl_desktop.engine.training import recipe
from tl_desktop.engine.training.callbacks import Callback, EarlyStopping
from tl_desktop.engine.training.epochs import EpochLoop
from tl_desktop.engine.training.events import (
    EpochEnded,
    Event,
    PhaseStarted,
    event_from_dict,
)
from tl_desktop.engine.training.trainer import Trainer


class Recorder(Callback):
    """Records events; optionally requests a stop when ``stop_when(event)`` is true."""

    def __init__(self, stop: StopToken | None = None, stop_when=None) -> None:
        self.events: list[Event] = []
        self.stop = stop
        self.stop_when = stop_when

    def on_event(self, event: Event) -> None:
        self.events.append(event)
        if self.stop_when is not None and self.stop_when(event):
            self.stop.request()

    @property
    def kinds(self) -> list[str]:
        """Event kinds with each run of BatchEnded collapsed to one entry (cache progress left out)."""
        kinds: list[str] = []
        for event in self.events:
            if event.kind == "CacheProgress":
                continue
            if not (event.kind == "BatchEnded" and kinds and kinds[-1] == "BatchEnded"):
                kinds.append(event.kind)
        return kinds


def make_config(root: Path, out: Path, **train) -> RunConfig:
    # The gradient loop's mechanics, on the classic recipe (head epochs, then fine-tuning); LP-FT in test_lpft.py
    train_cfg = dict(epochs=2, head_epochs=1, batch_size=4, early_stopping_patience=0, recipe="classic")
    train_cfg.update(train)
    blocks = train_cfg.pop("trainable_blocks", 1)
    return RunConfig(
        data=DataConfig(root=str(root)),
        model=ModelConfig(backbone="tiny_cnn", trainable_blocks=blocks, dropout=0.0),
        train=TrainConfig(**train_cfg),
        out_dir=str(out),
    )


@pytest.fixture
def images(tmp_path, make_image_folder) -> Path:
    return make_image_folder(tmp_path, classes={"a": 8, "b": 8}, size=40)


def test_completed_fit_emits_events_in_documented_order(tiny_backbone, images, tmp_path):
    recorder = Recorder()
    result = Trainer(make_config(images, tmp_path / "runs"), callbacks=[recorder]).fit()

    assert result.status == "completed"
    epochs = [e for e in recorder.events if isinstance(e, EpochEnded)]
    # Which epochs improved, from the validation numbers alone (not the trainer's is_best flags):
    # the first always does; the second if its accuracy is higher, or equal with a lower loss.
    first, second = epochs
    second_improved = second.val_accuracy > first.val_accuracy or (
        second.val_accuracy == first.val_accuracy and second.val_loss < first.val_loss)
    assert [e.is_best for e in epochs] == [True, second_improved]
    expected = ["FitStarted", "PhaseStarted", "EpochStarted", "BatchEnded", "EpochEnded", "CheckpointSaved"]
    expected += ["PhaseStarted", "EpochStarted", "BatchEnded", "EpochEnded"]
    expected += ["CheckpointSaved"] if second_improved else []
    expected += ["FitEnded"]
    assert recorder.kinds == expected
    saved = [e for e in recorder.events if e.kind == "CheckpointSaved"]
    assert [e.epoch for e in saved] == ([1, 2] if second_improved else [1])
    assert [e.value for e in saved] == [first.val_accuracy, second.val_accuracy][: len(saved)]
    assert result.best_epoch == (2 if second_improved else 1)
    assert [e.phase for e in recorder.events if isinstance(e, PhaseStarted)] == ["head", "finetune"]
    for started in (e for e in recorder.events if e.kind == "EpochStarted"):
        batches = [e for e in recorder.events if e.kind == "BatchEnded" and e.epoch == started.epoch]
        assert [b.step for b in batches] == list(range(1, started.steps + 1))
    ended = recorder.events[-1]
    assert ended.status == "completed" and ended.epochs_completed == 2 and ended.error is None
    assert result.history == epochs


def test_run_folder_holds_records_and_a_replayable_event_log(tiny_backbone, images, tmp_path):
    recorder = Recorder()
    result = Trainer(make_config(images, tmp_path / "runs"), callbacks=[recorder]).fit()

    run_dir = result.run_dir
    assert run_dir.parent == tmp_path / "runs" and run_dir.name.endswith("-tiny_cnn")
    for name in ("config.json", "split.json", "audit.json", "best.safetensors", "model.tlmodel"):
        assert (run_dir / name).is_file(), name
    lines = (run_dir / "events.jsonl").read_text(encoding="utf-8").splitlines()
    assert [event_from_dict(json.loads(line)) for line in lines] == recorder.events
    assert RunConfig.load(run_dir / "config.json") == make_config(images, tmp_path / "runs")
    assert result.model_path == run_dir / "model.tlmodel"


def test_stop_during_first_epoch_ends_stopped_without_model(tiny_backbone, images, tmp_path):
    stop = StopToken()
    recorder = Recorder(stop, lambda e: e.kind == "BatchEnded" and e.epoch == 1)
    result = Trainer(make_config(images, tmp_path / "runs"), callbacks=[recorder], stop=stop).fit()

    assert result.status == "stopped"
    assert recorder.kinds == ["FitStarted", "PhaseStarted", "EpochStarted", "BatchEnded", "FitEnded"]
    assert sum(e.kind == "BatchEnded" for e in recorder.events) == 1  # checked at every batch
    assert recorder.events[-1].epochs_completed == 0
    assert result.model_path is None and not (result.run_dir / "best.safetensors").exists()


def test_stop_after_an_epoch_keeps_best_checkpoint_and_writes_model(tiny_backbone, images, tmp_path):
    stop = StopToken()
    recorder = Recorder(stop, lambda e: e.kind == "BatchEnded" and e.epoch == 2)
    result = Trainer(make_config(images, tmp_path / "runs", epochs=3), callbacks=[recorder], stop=stop).fit()

    assert result.status == "stopped" and recorder.events[-1].kind == "FitEnded"
    assert recorder.events[-1].epochs_completed == 1 and result.best_epoch == 1
    assert (result.run_dir / "best.safetensors").is_file()
    assert result.model_path is not None and result.model_path.is_file()


def test_stop_during_validation_is_honoured(tiny_backbone, images, tmp_path):
    stop = StopToken()
    recorder = Recorder(stop, lambda e: e.kind == "BatchEnded" and e.step == e.steps and e.epoch == 1)
    result = Trainer(make_config(images, tmp_path / "runs"), callbacks=[recorder], stop=stop).fit()

    assert result.status == "stopped"
    assert "EpochEnded" not in recorder.kinds and recorder.kinds[-1] == "FitEnded"


def test_image_deleted_after_scan_fails_cleanly(tiny_backbone, images, tmp_path):
    config = make_config(images, tmp_path / "runs")
    scan = scan_dataset(config.data)
    missing = scan.split.train[0].path
    Path(missing).unlink()
    recorder = Recorder()
    result = Trainer(config, scan=scan, callbacks=[recorder]).fit()

    ended = recorder.events[-1]
    assert result.status == "failed" and ended.kind == "FitEnded" and ended.status == "failed"
    assert missing in ended.error and "\n" not in ended.error
    assert "Traceback" in ended.error_details
    assert recorder.kinds[0] == "FitStarted"


def test_exception_in_a_step_fails_cleanly(tiny_backbone, images, tmp_path, monkeypatch):
    def broken(self, inputs, forward):
        raise RuntimeError("step exploded")

    monkeypatch.setattr(EpochLoop, "logits", broken)
    recorder = Recorder()
    result = Trainer(make_config(images, tmp_path / "runs"), callbacks=[recorder]).fit()

    assert result.status == "failed"
    assert recorder.kinds == ["FitStarted", "PhaseStarted", "EpochStarted", "FitEnded"]
    assert "step exploded" in recorder.events[-1].error
    last_line = (result.run_dir / "events.jsonl").read_text(encoding="utf-8").splitlines()[-1]
    assert json.loads(last_line)["status"] == "failed"


def test_failure_before_start_still_brackets_the_stream(tiny_backbone, images, tmp_path):
    config = make_config(images, tmp_path / "runs").replace(model=ModelConfig(backbone="no_such_net"))
    recorder = Recorder()
    result = Trainer(config, callbacks=[recorder]).fit()

    assert result.status == "failed"
    assert recorder.kinds == ["FitStarted", "FitEnded"]
    assert "no_such_net" in recorder.events[-1].error


def test_corrupt_image_is_skipped_and_training_goes_on(tiny_backbone, images, tmp_path):
    bad = images / "a" / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    result = Trainer(make_config(images, tmp_path / "runs")).fit()

    assert result.status == "completed"
    audit = json.loads((result.run_dir / "audit.json").read_text(encoding="utf-8"))
    assert "broken.jpg" in json.dumps(audit["unreadable"])
    assert "broken.jpg" not in (result.run_dir / "split.json").read_text(encoding="utf-8")


def test_same_seed_gives_identical_history(tiny_backbone, images, tmp_path):
    def numbers(result):
        return [(e.train_loss, e.train_accuracy, e.val_loss, e.val_accuracy, e.lr) for e in result.history]

    first = Trainer(make_config(images, tmp_path / "one", seed=7)).fit()
    second = Trainer(make_config(images, tmp_path / "two", seed=7)).fit()
    assert numbers(first) == numbers(second)
    a, b = load_file(str(first.run_dir / "best.safetensors")), load_file(str(second.run_dir / "best.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_head_only_training_leaves_backbone_and_batchnorm_untouched(tiny_backbone, images, tmp_path):
    from tl_desktop.engine.models.backbones import create_model

    pretrained = create_model("tiny_cnn", num_classes=2).state_dict()
    result = Trainer(make_config(images, tmp_path / "runs", trainable_blocks=0)).fit()

    best = load_file(str(result.run_dir / "best.safetensors"))
    backbone_keys = [k for k in best if k.startswith("blocks.")]
    assert any("running_mean" in k for k in backbone_keys)
    assert all(torch.equal(best[k], pretrained[k]) for k in backbone_keys)
    assert not torch.equal(best["head.1.weight"], pretrained["head.1.weight"])
    assert {e.phase for e in result.history} == {"head"}


def test_finetune_phase_trains_only_the_chosen_blocks(tiny_backbone, images, tmp_path):
    from tl_desktop.engine.models.backbones import create_model

    pretrained = create_model("tiny_cnn", num_classes=2).state_dict()
    result = Trainer(make_config(images, tmp_path / "runs", trainable_blocks=1, lr=0.05, finetune_lr=0.05)).fit()

    best = load_file(str(result.run_dir / "best.safetensors"))
    changed = {k.split(".")[1] for k in best if k.startswith("blocks.") and not torch.equal(best[k], pretrained[k])}
    assert changed <= {"2"}
    if result.best_epoch == 2:
        assert changed == {"2"}


def test_plan_phases_follows_fine_tune_recipe():
    train = TrainConfig(epochs=5, head_epochs=2, lr=1e-2, finetune_lr=1e-3, recipe="classic")
    head, finetune = recipe.plan_phases(train, 2)
    assert (head.name, head.first_epoch, head.last_epoch, head.trainable_blocks, head.lr) == ("head", 1, 2, 0, 1e-2)
    assert (finetune.first_epoch, finetune.last_epoch, finetune.trainable_blocks, finetune.lr) == (3, 5, 2, 1e-3)
    assert [p.name for p in recipe.plan_phases(train, 0)] == ["head"]
    assert recipe.plan_phases(train, 0)[0].epochs == 5
    assert [p.name for p in recipe.plan_phases(TrainConfig(epochs=3, head_epochs=0, recipe="classic"), "all")] == [
        "finetune"]


def test_warmup_then_cosine_schedule():
    factors = [recipe.warmup_cosine_factor(step, total_steps=20, warmup_steps=4) for step in range(20)]
    assert factors[:4] == [0.25, 0.5, 0.75, 1.0]
    assert factors[4] == 1.0 and all(a >= b for a, b in zip(factors[4:], factors[5:]))
    assert math.isclose(factors[-1], 0.5 * (1 + math.cos(math.pi * 15 / 16)))


def test_class_weights_only_when_imbalanced():
    assert recipe.class_weights([10, 8], "auto") is None
    weights = recipe.class_weights([30, 10], "auto")
    assert weights is not None and weights[1] / weights[0] == pytest.approx(3.0)
    assert float(weights.mean()) == pytest.approx(1.0)
    assert recipe.class_weights([30, 10], "off") is None
    assert recipe.class_weights([10, 10], "on").tolist() == [1.0, 1.0]


def test_imbalanced_data_announce_balanced_loss(tiny_backbone, tmp_path, make_image_folder):
    root = make_image_folder(tmp_path, classes={"a": 16, "b": 6}, size=40)
    recorder = Recorder()
    Trainer(make_config(root, tmp_path / "runs", epochs=1), callbacks=[recorder]).fit()
    messages = [e.text for e in recorder.events if e.kind == "Message"]
    assert any("imbalanced" in text for text in messages)


def _epoch(epoch: int, val_accuracy: float, val_loss: float) -> EpochEnded:
    return EpochEnded(epoch, 9, "head", 1.0, 0.5, val_loss, val_accuracy, 1e-3, 1.0, 1.0, False)


def test_early_stopping_counts_epochs_without_improvement():
    early = EarlyStopping(patience=2)
    for epoch, (acc, loss) in enumerate([(0.5, 1.0), (0.6, 0.9), (0.6, 0.95), (0.55, 0.8)], start=1):
        early.on_event(_epoch(epoch, acc, loss))
    assert early.stop_training and "2 epochs" in early.reason

    tie_break = EarlyStopping(patience=1)
    tie_break.on_event(_epoch(1, 0.6, 1.0))
    tie_break.on_event(_epoch(2, 0.6, 0.9))  # same accuracy, lower loss counts as better
    assert not tie_break.stop_training
    assert not EarlyStopping(patience=0).stop_training


def test_early_stopping_from_config_ends_fit_with_a_message(tiny_backbone, images, tmp_path, monkeypatch):
    monkeypatch.setattr(Trainer, "_validate", lambda self, phase: (1.0, 0.5))  # never improves after epoch 1
    recorder = Recorder()
    config = make_config(images, tmp_path / "runs", epochs=6, head_epochs=6, trainable_blocks=0,
                         early_stopping_patience=2)
    result = Trainer(config, callbacks=[recorder]).fit()

    assert result.status == "completed" and [e.epoch for e in result.history] == [1, 2, 3]
    assert recorder.kinds[-2:] == ["Message", "FitEnded"] and "early stopping" in recorder.events[-2].text
    assert result.model_path is not None and result.best_epoch == 1


def test_any_callback_may_end_training_early(tiny_backbone, images, tmp_path):
    class EndAfterFirstEpoch(Callback):
        def on_event(self, event: Event) -> None:
            if isinstance(event, EpochEnded):
                self.stop_training = True

    result = Trainer(make_config(images, tmp_path / "runs"), callbacks=[EndAfterFirstEpoch()]).fit()
    assert result.status == "completed" and len(result.history) == 1


def test_device_choice(monkeypatch):
    from tl_desktop.config import ConfigError
    from tl_desktop.engine.runtime.device import configure_threads, pick_device

    assert pick_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr("tl_desktop.engine.runtime.device.mps_available", lambda: False)
    assert pick_device("auto") == torch.device("cpu")
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        pick_device("cuda")
    with pytest.raises(ConfigError, match="Metal"):
        pick_device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device("auto") == torch.device("cuda")

    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("TL_DESKTOP_NUM_THREADS", "1")
        assert configure_threads() == 1
        monkeypatch.setenv("TL_DESKTOP_NUM_THREADS", "many")
        with pytest.raises(ConfigError, match="whole number"):
            configure_threads()
    finally:
        torch.set_num_threads(before)


def test_console_progress_lines():
    import io

    from tl_desktop.engine.training.callbacks import ConsoleProgress
    from tl_desktop.engine.training.events import CacheProgress, FitEnded

    out = io.StringIO()
    console = ConsoleProgress(out)
    for done in range(0, 101, 10):
        console.on_event(CacheProgress("features", done, 100, "train"))
    console.on_event(EpochEnded(3, 10, "finetune", 0.51, 0.84, 0.43, 0.875, 1e-4, 12.3, 95.0, True))
    console.on_event(FitEnded("completed", "runs/x", "runs/x/model.tlmodel", 3, 0.875, 0.43, 10, 130.0))
    lines = out.getvalue().splitlines()
    assert lines[:5] == [f"computing train features: {d}/100" for d in (0, 30, 50, 80, 100)]
    assert lines[5] == ("epoch  3/10 [finetune]  train loss 0.5100 acc  84.0%  |  val loss 0.4300 acc  87.5%  |  "
                        "12 s, ETA 1 min 35 s  *best")
    assert lines[6].startswith("Training finished in 2 min 10 s; best validation accuracy 87.5% at epoch 3.")
    assert lines[6].endswith("Model saved to runs/x/model.tlmodel")


def test_error_descriptions_are_one_line():
    from tl_desktop.engine.data.images import ImageLoadError
    from tl_desktop.engine.training.errors import describe_error
    from tl_desktop.fileio import DiskWriteError

    assert describe_error(ImageLoadError("/d/a.jpg", "truncated or corrupt JPEG")) == (
        "could not read image /d/a.jpg: truncated or corrupt JPEG")
    assert "smaller batch size" in describe_error(RuntimeError("CUDA out of memory. Tried to allocate 2 GiB"))
    assert describe_error(DiskWriteError(28, "could not write runs/x/best.safetensors: No space left on device")) == (
        "could not write runs/x/best.safetensors: No space left on device")
    from_worker = RuntimeError(
        "Caught ImageLoadError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
        '  File "data.py", line 1, in __getitem__\n'
        "tl_desktop.engine.data.images.ImageLoadError: /d/b.png: file not found\n")
    assert describe_error(from_worker) == "could not read image /d/b.png: file not found"
    assert describe_error(ValueError("bad\nsecond line")) == "unexpected error (ValueError): bad"
