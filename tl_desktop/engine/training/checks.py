"""What can be known to be wrong before a run starts, checked once for the command line, the window
and the trainer itself. Each problem is an exception whose message tells the user what to change."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tl_desktop.config import ConfigError, RunConfig

if TYPE_CHECKING:
    from tl_desktop.engine.data.dataset import DatasetSplit, ScanResult
    from tl_desktop.engine.models.specs import BackboneSpec


@dataclass(frozen=True)
class TrainingPlan:
    """A run that passed the checks: its settings, its backbone, and whether weights must be downloaded."""

    config: RunConfig
    spec: BackboneSpec
    needs_download: bool


def check_split(split: DatasetSplit) -> None:
    """A split can train: two classes or more, and images to train and to validate on."""
    if len(split.classes) < 2:
        raise ConfigError(f"training needs at least two classes; the data have {len(split.classes)}")
    if not split.train or not split.val:
        raise ConfigError("training needs at least one training and one validation image")


def check_trainable_blocks(config: RunConfig, spec: BackboneSpec) -> None:
    """A number of trainable blocks the backbone has (more is refused, not quietly read as "all")."""
    blocks = config.model.trainable_blocks
    if blocks != "all" and int(blocks) > spec.num_blocks:
        raise ConfigError(f"trainable blocks {blocks} is more than the {spec.num_blocks} blocks of {spec.name}; "
                          f"choose at most {spec.num_blocks}, or 'all'")


def check_settings(config: RunConfig) -> BackboneSpec:
    """The settings, the device, the backbone and the weights file (before the data are scanned and before
    any run folder exists: a weights file is read to check it holds weights); the backbone's spec."""
    from tl_desktop.engine.models.backbones import get_backbone_spec
    from tl_desktop.engine.models.weights import load_state_dict_file
    from tl_desktop.engine.runtime.device import pick_device
    from tl_desktop.engine.runtime.inference import inference_engine

    config.validate()
    device = pick_device(config.train.device)  # a missing GPU is refused here, before any run folder exists
    inference_engine(device.type)  # and so is a bad TL_DESKTOP_INFERENCE
    spec = get_backbone_spec(config.model.backbone)
    check_trainable_blocks(config, spec)
    if config.model.weights_file is not None:
        load_state_dict_file(Path(config.model.weights_file).expanduser())
    return spec


def check_before_training(config: RunConfig, scan: ScanResult) -> TrainingPlan:
    """Check the settings and the scanned data of a run about to start.

    Raises ConfigError, BackboneError or WeightsFileError; nothing is downloaded or trained.
    """
    from tl_desktop.engine.models.weights import weights_status

    spec = check_settings(config)
    check_split(scan.split)
    needs_download = config.model.weights_file is None and weights_status(spec) == "download"
    return TrainingPlan(config, spec, needs_download)
