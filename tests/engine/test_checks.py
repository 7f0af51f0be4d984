"""Pre-training checks: one set of rules for the command line, the window and the trainer."""

from __future__ import annotations

import pytest
import torch

from tl_desktop.config import (
    ConfigError,
    DataConfig,
    ModelConfig,
    RunConfig,
    TrainConfig,
)
from tl_desktop.engine.data.dataset import scan_dataset
from tl_desktop.engine.models.backbones import BackboneError
from tl_desktop.engine.models.bundle import load_bundle
from tl_desktop.engine.models.weights import WeightsFileError
from tl_desktop.engine.training.checks import (
    check_before_training,
    check_settings,
    check_split,
)
from tl_desktop.engine.training.runfolder import RunFolder


def _config(root, backbone="tiny_cnn", **model) -> RunConfig:
    return RunConfig(data=DataConfig(root=str(root)), model=ModelConfig(backbone=backbone, **model),
                     train=TrainConfig(epochs=2, head_epochs=1, batch_size=4))


def test_a_good_run_passes_and_knows_its_weights_are_here(tiny_backbone, tmp_path, make_image_folder):
    root = make_image_folder(tmp_path, classes={"a": 6, "b": 6}, size=40)
    plan = check_before_training(_config(root), scan_dataset(DataConfig(root=str(root))))
    assert plan.spec.name == "tiny_cnn"
    assert plan.needs_download is False  # the tiny backbone's weights resolve as bundled


def test_a_backbone_without_weights_here_needs_a_download(tiny_backbone, tmp_path, make_image_folder):
    root = make_image_folder(tmp_path, classes={"a": 6, "b": 6}, size=40)
    plan = check_before_training(_config(root, backbone="resnet18"), scan_dataset(DataConfig(root=str(root))))
    assert plan.needs_download is True


def test_each_bad_setting_is_named(tiny_backbone, tmp_path):
    with pytest.raises(BackboneError, match="unknown backbone 'no_such_net'"):
        check_settings(_config(tmp_path, backbone="no_such_net"))
    with pytest.raises(WeightsFileError, match="weights file not found: .*missing.safetensors"):
        check_settings(_config(tmp_path, weights_file=str(tmp_path / "missing.safetensors")))
    with pytest.raises(ConfigError, match="batch_size"):
        check_settings(_config(tmp_path).replace(train=TrainConfig(batch_size=0)))


def test_a_split_without_validation_images_cannot_train(tiny_backbone, tmp_path, make_image_folder):
    root = make_image_folder(tmp_path, classes={"a": 6, "b": 6}, size=40)
    split = scan_dataset(DataConfig(root=str(root))).split
    split.val = []
    with pytest.raises(ConfigError, match="at least one training and one validation image"):
        check_split(split)
    split.classes = split.classes[:1]
    with pytest.raises(ConfigError, match="at least two classes; the data have 1"):
        check_split(split)


def test_more_trainable_blocks_than_the_backbone_has_is_refused(tiny_backbone, tmp_path):
    with pytest.raises(ConfigError, match="trainable blocks 999 is more than the 3 blocks of tiny_cnn"):
        check_settings(_config(tmp_path, trainable_blocks=999))
    assert check_settings(_config(tmp_path, trainable_blocks=3)).name == "tiny_cnn"


def test_an_out_folder_that_cannot_hold_runs_fails_with_a_message(tiny_backbone, tmp_path, make_image_folder,
                                                                    capsys):
    from tl_desktop.cli import main

    root = make_image_folder(tmp_path, classes={"a": 6, "b": 6}, size=40)
    not_a_folder = tmp_path / "runs.txt"
    not_a_folder.write_text("a file, not a folder", encoding="utf-8")
    assert main(["train", "--data", str(root), "--backbone", "tiny_cnn", "--epochs", "2", "--head-epochs", "1",
                 "--out", str(not_a_folder)]) == 1
    captured = capsys.readouterr()
    assert "Training failed after " in captured.err and "Run folder: not created" in captured.out
    assert f": cannot create a run folder in {not_a_folder}: Not a directory" in captured.err


def test_a_diverging_loss_stops_the_run_and_keeps_the_last_sound_model(tiny_backbone, tmp_path, make_image_folder):
    import math

    from safetensors.torch import load_file

    from tl_desktop.engine.training.callbacks import Callback
    from tl_desktop.engine.training.events import EpochEnded
    from tl_desktop.engine.training.trainer import Trainer

    class Poison(Callback):
        """After epoch 1, turn one head weight into NaN, as an exploding update would."""

        def __init__(self) -> None:
            self.trainer = None

        def on_event(self, event) -> None:
            if isinstance(event, EpochEnded) and event.epoch == 1:
                with torch.no_grad():
                    next(self.trainer.model.head.parameters()).view(-1)[0] = math.nan

    root = make_image_folder(tmp_path, classes={"a": 6, "b": 6}, size=40)
    poison = Poison()
    trainer = Trainer(_config(root).replace(out_dir=str(tmp_path / "runs")), callbacks=[poison])
    poison.trainer = trainer
    result = trainer.fit()
    assert result.status == "failed" and result.best_epoch == 1
    ended = RunFolder(result.run_dir).events()[-1]
    assert ended.error.startswith("the loss diverged at epoch 2 (it became nan); lower the learning rate")
    weights = load_file(str(result.model_path.parent / "best.safetensors"))
    assert all(torch.isfinite(t).all() for t in weights.values())
    assert result.model_path.is_file()  # the model of epoch 1, exported: no NaN weights anywhere
    assert all(torch.isfinite(p).all() for p in load_bundle(result.model_path).model.state_dict().values())
