"""The window's remembered configuration: one QSettings key holding ``RunConfig.to_dict()`` as JSON;
and the projects: the recent list (a JSON list of folders, newest first) and the last project opened.

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
RECENT_KEY = "projects/recent"
LAST_PROJECT_KEY = "projects/last"


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


def load_recent(settings: QSettings) -> list[str]:
    """The recent project folders, newest first (empty when none are stored or the value is unreadable)."""
    try:
        recent = json.loads(str(settings.value(RECENT_KEY, "[]")))
    except ValueError:
        return []
    return [path for path in recent if isinstance(path, str)] if isinstance(recent, list) else []


def save_recent(settings: QSettings, recent: list[str]) -> None:
    settings.setValue(RECENT_KEY, json.dumps(recent))


def last_project(settings: QSettings) -> str:
    """The folder of the project open when the window last closed ("" for none)."""
    return str(settings.value(LAST_PROJECT_KEY, "") or "")


def remember_last_project(settings: QSettings, folder: str) -> None:
    settings.setValue(LAST_PROJECT_KEY, folder)


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
