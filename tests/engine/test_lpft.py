"""The default LP-FT recipe: epoch 1 is the linear probe (scikit-learn's logistic regression on the frozen
features, loaded as the head), later epochs train on from it, and a run never ends below the probe."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from tl_desktop.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from tl_desktop.engine.training import recipe
from tl_desktop.engine.training.callbacks import Callback
from tl_desktop.engine.training.events import Event
from tl_desktop.engine.training.trainer import Trainer


class Recorder(Callback):
    def __init__(self) -> None:
        self.events: list[Event] = []

    def on_event(self, event: Event) -> None:
        self.events.append(event)

    def of(self, kind: str) -> list[Event]:
        return [e for e in self.events if e.kind == kind]


def make_config(root: Path, out: Path, blocks: int | str = 1, **train) -> RunConfig:
    settings = dict(epochs=3, batch_size=4, early_stopping_patience=0, augmentation="light", cached_views=2,
                    recipe="lp-ft")
    settings.update(train)
    return RunConfig(data=DataConfig(root=str(root)),
                     model=ModelConfig(backbone="tiny_cnn", trainable_blocks=blocks, dropout=0.0),
                     train=TrainConfig(**settings), out_dir=str(out))


@pytest.fixture
def images(tmp_path, make_image_folder) -> Path:
    return make_image_folder(tmp_path, classes={"a": 10, "b": 10, "c": 10}, size=40)


def test_lp_ft_plans_a_probe_epoch_then_fine_tuning():
    train = TrainConfig(epochs=5, lr=1e-2, finetune_lr=1e-3, recipe="lp-ft")
    probe, finetune = recipe.plan_phases(train, 2)
    assert (probe.name, probe.first_epoch, probe.last_epoch, probe.trainable_blocks) == ("probe", 1, 1, 0)
    assert (finetune.name, finetune.first_epoch, finetune.last_epoch, finetune.trainable_blocks, finetune.lr) == (
        "finetune", 2, 5, 2, 1e-3)
    assert [(p.name, p.first_epoch, p.last_epoch) for p in recipe.plan_phases(train, 0)] == [
        ("probe", 1, 1), ("head", 2, 5)]
    assert [p.name for p in recipe.plan_phases(TrainConfig(epochs=1, recipe="lp-ft"), 3)] == ["probe"]


def test_epoch_1_is_the_probe_with_its_suggestion(tiny_backbone, images, tmp_path):
    recorder = Recorder()
    result = Trainer(make_config(images, tmp_path / "runs"), callbacks=[recorder]).fit()
    assert result.status == "completed", result
    assert [(e.phase, e.first_epoch, e.last_epoch) for e in recorder.of("PhaseStarted")] == [
        ("probe", 1, 1), ("finetune", 2, 3)]
    assert not [e for e in recorder.of("BatchEnded") if e.epoch == 1]  # no gradient steps in the probe epoch
    probe_text = next(e.text for e in recorder.of("Message") if "linear probe" in e.text)
    assert "Suggested: train" in probe_text and "validation accuracy" in probe_text
    epochs = recorder.of("EpochEnded")
    assert [e.epoch for e in epochs] == [1, 2, 3] and epochs[0].phase == "probe"
    assert 0.0 <= epochs[0].val_accuracy <= 1.0 and epochs[0].train_loss > 0


def test_the_probe_head_is_scikit_learns_logistic_regression(tiny_backbone, images, tmp_path):
    """One epoch, no blocks: the model file's head is the probe fitted on the frozen features."""
    from sklearn.linear_model import LogisticRegression

    from tl_desktop.engine.data.dataset import scan_dataset
    from tl_desktop.engine.models.backbones import create_model

    config = make_config(images, tmp_path / "runs", blocks=0, epochs=1, augmentation="none")
    recorder = Recorder()
    result = Trainer(config, callbacks=[recorder]).fit()
    assert result.status == "completed" and result.best_epoch == 1
    weights = load_file(str(result.run_dir / "best.safetensors"))
    head_weight = weights["head.1.weight"].numpy()

    split = scan_dataset(config.data).split
    model = create_model("tiny_cnn", num_classes=3, pretrained=True).eval()
    from tl_desktop.engine.data.dataset import ImageDataset
    from tl_desktop.engine.data.preprocess import eval_transform

    def features(samples):
        data = ImageDataset(samples, eval_transform(tiny_backbone.preprocessing))
        with torch.inference_mode():
            return np.stack([model.features(data[i][0][None])[0].numpy() for i in range(len(data))])

    strength = float(next(e.text for e in recorder.of("Message") if "linear probe" in e.text)
                     .split("C=")[1].split(")")[0])
    reference = LogisticRegression(C=strength, max_iter=3000).fit(features(split.train), [s.label for s in split.train])
    val_x = features(split.val)
    ours = (val_x @ head_weight.T + weights["head.1.bias"].numpy()).argmax(1)
    assert (ours == reference.predict(val_x)).mean() >= 0.9


def test_a_fine_tuning_that_never_beats_the_probe_keeps_the_probe(tiny_backbone, images, tmp_path, monkeypatch):
    calls = []

    def validate(self, phase):
        calls.append(phase.name)
        return (0.2, 0.9) if phase.name == "probe" else (2.0, 0.1)  # fine-tuning is worse on validation

    monkeypatch.setattr(Trainer, "_validate", validate)
    recorder = Recorder()
    result = Trainer(make_config(images, tmp_path / "runs"), callbacks=[recorder]).fit()
    assert result.status == "completed" and result.best_epoch == 1 and calls == ["probe", "finetune", "finetune"]
    assert any("did not beat it on validation" in e.text for e in recorder.of("Message"))


def test_a_run_stopped_after_the_probe_resumes_with_fine_tuning(tiny_backbone, images, tmp_path):
    from tl_desktop.engine.runtime.stop import StopToken

    stop = StopToken()

    class StopAfterProbe(Recorder):
        def on_event(self, event: Event) -> None:
            super().on_event(event)
            if event.kind == "EpochEnded" and event.epoch == 1:
                stop.request()

    first = Trainer(make_config(images, tmp_path / "runs"), callbacks=[StopAfterProbe()], stop=stop).fit()
    assert first.status == "stopped" and [e.epoch for e in first.history] == [1]
    recorder = Recorder()
    resumed = Trainer(make_config(images, tmp_path / "runs"), callbacks=[recorder], run_dir=first.run_dir,
                      resume=True).fit()
    assert resumed.status == "completed"
    assert [e.phase for e in recorder.of("PhaseStarted")] == ["finetune"]
    assert [e.epoch for e in recorder.of("EpochEnded")][-2:] == [2, 3]


def test_a_configuration_of_schema_1_means_the_classic_recipe():
    old = RunConfig().to_dict() | {"schema_version": 1}
    old["train"].pop("recipe")
    assert RunConfig.from_dict(old).train.recipe == "classic"
    assert RunConfig.from_dict({"train": {"recipe": "lp-ft"}}).train.recipe == "lp-ft"
