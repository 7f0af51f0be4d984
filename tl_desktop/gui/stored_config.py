"""The window's remembered configuration: one QSettings key holding ``RunConfig.to_dict()`` as JSON.

``RunConfig.from_dict`` migrates older schema versions. Settings written before the configuration
was stored as one key (a key per training setting) are read once, when the new key is absent.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from PySide6.QtCore import QSettings

from tl_desktop.config import ConfigError, ModelConfig, RunConfig, TrainConfig

CONFIG_KEY = "run/config"


def save_config(settings: QSettings, config: RunConfig) -> None:
    """Remember ``config`` (the weights file is not kept: it is chosen again in each session)."""
    kept = config.replace(model=dataclasses.replace(config.model, weights_file=None))
    settings.setValue(CONFIG_KEY, json.dumps(kept.to_dict(), sort_keys=True))


def load_config(settings: QSettings) -> RunConfig:
    """The remembered configuration; the defaults when there is none or it cannot be read."""
    raw = settings.value(CONFIG_KEY)
    if raw is None:
        return _from_separate_keys(settings)
    try:
        config = RunConfig.from_dict(json.loads(str(raw)))
        return config.replace(model=dataclasses.replace(config.model, weights_file=None)).validate()
    except (ValueError, TypeError, AttributeError):  # JSONDecodeError and ConfigError are ValueErrors
        return RunConfig()


def _from_separate_keys(settings: QSettings) -> RunConfig:
    """Settings of earlier versions: ``train/<field>``, ``model/backbone`` and ``model/dropout``."""
    default = RunConfig()
    train: dict[str, Any] = {}
    for f in dataclasses.fields(TrainConfig):
        raw = settings.value(f"train/{f.name}")
        if raw is not None and f.name != "num_workers":
            train[f.name] = type(getattr(default.train, f.name))(raw)
    backbone = settings.value("model/backbone")
    dropout = settings.value("model/dropout")
    try:
        model = ModelConfig(backbone=str(backbone) if backbone is not None else default.model.backbone,
                            trainable_blocks=default.model.trainable_blocks,
                            dropout=float(dropout) if dropout is not None else default.model.dropout)
        return default.replace(model=model, train=dataclasses.replace(default.train, **train)).validate()
    except (ValueError, TypeError, ConfigError):
        return default
