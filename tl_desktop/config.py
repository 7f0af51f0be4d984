"""One configuration for a run: the CLI, the window and the run folder all use these dataclasses.

A run is reproducible from its ``config.json``. Everything here is plain data (JSON-safe values
only) so it can be stored, compared and shown in a report.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

SCHEMA_VERSION = 2  # 2: train.recipe (configurations of schema 1 were trained with "classic")

TrainableBlocks = Union[int, Literal["all"]]
AUGMENTATION_PRESETS = ("none", "light", "strong")
CLASS_BALANCE_MODES = ("auto", "on", "off")
RECIPES = ("lp-ft", "classic")  # lp-ft: linear probe, then fine-tune; classic: head epochs, then fine-tune
DEVICES = ("auto", "cpu", "cuda", "mps")


class ConfigError(ValueError):
    """A configuration value is out of range or inconsistent; the message says which and why."""


@dataclass(frozen=True)
class DataConfig:
    """Where the images are and how they are split: a folder (``root``) or a label table (``labels``),
    and where each image's group comes from (``group_by``: a table column, ``dicom:TAG`` or ``re:PATTERN``);
    ``overrides``: the user's marks (an ``overrides.csv`` or a project folder) applied before the split."""

    root: str = ""
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    seed: int = 0
    labels: str = ""
    group_by: str = ""
    dicom_window: str = "auto"
    dicom_frame: str = "middle"
    overrides: str = ""

    def validate(self) -> None:
        if self.root and self.labels:
            raise ConfigError("give an image folder or a label table, not both")
        kind, _ = group_source(self.group_by)
        if kind == "column" and not self.labels:
            raise ConfigError(f"group_by {self.group_by!r} names a table column, which needs a label table; "
                              "for a folder use 'dicom:TAG' or 're:PATTERN'")
        parse_dicom_window(self.dicom_window)
        if self.dicom_frame not in DICOM_FRAME_RULES and dicom_frame_number(self.dicom_frame) is None:
            raise ConfigError(f"dicom_frame must be one of {', '.join(DICOM_FRAME_RULES)} or a frame number "
                              f"(1 = first), got {self.dicom_frame!r}")
        if not (0.0 < self.val_fraction < 1.0):
            raise ConfigError(f"val_fraction must be between 0 and 1, got {self.val_fraction}")
        if not (0.0 <= self.test_fraction < 1.0):
            raise ConfigError(f"test_fraction must be between 0 and 1, got {self.test_fraction}")
        if self.val_fraction + self.test_fraction >= 0.9:
            raise ConfigError("validation + test fractions leave less than 10% of images to train on")


def group_source(text: str) -> tuple[str, str]:
    """Parse a ``group_by`` setting into (kind, value): ("", "") for none, ("column", NAME), ("dicom", TAG)
    or ("regex", PATTERN); a pattern must compile and hold exactly one capture group."""
    text = text.strip()
    if not text:
        return "", ""
    if text.lower().startswith("dicom:"):
        tag = text[len("dicom:"):].strip()
        if not tag:
            raise ConfigError("group_by 'dicom:' needs a tag name, e.g. dicom:PatientID")
        return "dicom", tag
    if text.startswith("re:"):
        pattern = text[len("re:"):]
        try:
            groups = re.compile(pattern).groups
        except re.error as exc:
            raise ConfigError(f"group_by pattern {pattern!r} is not a valid regular expression: {exc}") from None
        if groups != 1:
            raise ConfigError(f"group_by pattern {pattern!r} must hold exactly one capture group (...), "
                              f"it holds {groups}")
        return "regex", pattern
    return "column", text


DICOM_FRAME_RULES = ("middle", "first", "last")


def parse_dicom_window(text: str) -> tuple[float, float] | None:
    """A ``dicom_window`` setting as (centre, width), or None for "auto" (each file's own window)."""
    if text.strip().lower() == "auto":
        return None
    parts = text.split(",")
    try:
        centre, width = (float(part) for part in parts)
    except ValueError:
        raise ConfigError(f"dicom_window must be 'auto' or 'CENTRE,WIDTH' (e.g. 40,400), got {text!r}") from None
    if not (math.isfinite(centre) and math.isfinite(width) and width >= 1):
        raise ConfigError(f"dicom_window needs a finite centre and a width of at least 1, got {text!r}")
    return centre, width


def dicom_frame_number(text: str) -> int | None:
    """A ``dicom_frame`` setting that is a frame number (1 = first), else None."""
    return int(text) if text.strip().isdigit() and int(text) >= 1 else None


@dataclass(frozen=True)
class ModelConfig:
    """Which backbone, how much of it trains, and the new head."""

    backbone: str = "efficientnet_lite0"
    trainable_blocks: TrainableBlocks = 2
    dropout: float = 0.2
    weights_file: str | None = None

    def validate(self) -> None:
        tb = self.trainable_blocks
        if not (tb == "all" or (isinstance(tb, int) and not isinstance(tb, bool) and tb >= 0)):
            raise ConfigError(f"trainable_blocks must be a number >= 0 or 'all', got {tb!r}")
        if not (0.0 <= self.dropout < 1.0):
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")


@dataclass(frozen=True)
class TrainConfig:
    """The training recipe. ``epochs`` counts all epochs. With ``recipe`` "classic" (the default) the first
    ``head_epochs`` train the head alone by gradient descent; with "lp-ft" epoch 1 fits the head as a linear
    probe on the frozen features and the others train on from it."""

    epochs: int = 10
    head_epochs: int = 3
    batch_size: int = 32  # the global batch: under torchrun it is shared among the processes
    lr: float = 3e-3
    finetune_lr: float = 3e-4
    weight_decay: float = 1e-2
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.1
    class_balance: str = "auto"
    augmentation: str = "light"
    cached_views: int = 4
    early_stopping_patience: int = 5
    seed: int = 0
    device: str = "auto"
    num_workers: int | None = None
    recipe: str = "classic"

    def validate(self) -> None:
        if self.epochs < 1:
            raise ConfigError(f"epochs must be at least 1, got {self.epochs}")
        if self.head_epochs < 0 or (self.recipe == "classic" and self.head_epochs > self.epochs):
            raise ConfigError(f"head_epochs must be between 0 and epochs ({self.epochs}), got {self.head_epochs}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.lr <= 0 or self.finetune_lr <= 0:
            raise ConfigError("learning rates must be positive")
        if not (0.0 <= self.label_smoothing < 1.0):
            raise ConfigError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.class_balance not in CLASS_BALANCE_MODES:
            raise ConfigError(f"class_balance must be one of {CLASS_BALANCE_MODES}, got {self.class_balance!r}")
        if self.augmentation not in AUGMENTATION_PRESETS:
            raise ConfigError(f"augmentation must be one of {AUGMENTATION_PRESETS}, got {self.augmentation!r}")
        if self.cached_views < 1:
            raise ConfigError(f"cached_views must be at least 1, got {self.cached_views}")
        if self.early_stopping_patience < 0:
            raise ConfigError("early_stopping_patience must be >= 0 (0 turns it off)")
        if self.device not in DEVICES:
            raise ConfigError(f"device must be one of {DEVICES}, got {self.device!r}")
        if self.num_workers is not None and self.num_workers < 0:
            raise ConfigError("num_workers must be >= 0")
        if self.recipe not in RECIPES:
            raise ConfigError(f"recipe must be one of {RECIPES}, got {self.recipe!r}")


@dataclass(frozen=True)
class RunConfig:
    """Everything needed to reproduce a run."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    out_dir: str = "runs"
    schema_version: int = SCHEMA_VERSION

    def validate(self) -> "RunConfig":
        """Check every section; return self so calls can be chained."""
        self.data.validate()
        self.model.validate()
        self.train.validate()
        return self

    def replace(self, **sections: Any) -> "RunConfig":
        """Return a copy with whole sections or top-level fields replaced."""
        return dataclasses.replace(self, **sections)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: Any) -> "RunConfig":
        """A config from its JSON form; a wrong type anywhere raises ConfigError naming the setting."""
        if not isinstance(raw, dict):
            raise ConfigError(f"a configuration must be a JSON object of sections, got {_json_kind(raw)}")
        version = raw.get("schema_version", SCHEMA_VERSION)
        if not isinstance(version, int) or isinstance(version, bool):
            raise ConfigError(f"schema_version must be a whole number, got {version!r}")
        if not isinstance(raw.get("out_dir", ""), str):
            raise ConfigError(f"out_dir must be text, got {_json_kind(raw['out_dir'])}")
        if version > SCHEMA_VERSION:
            raise ConfigError(
                f"this configuration was written by a newer tl_desktop (schema {version}); "
                f"this version reads schema {SCHEMA_VERSION} — please update tl_desktop"
            )
        train = raw.get("train", {})
        if version < 2 and isinstance(train, dict):
            train = {"recipe": "classic", **train}  # what schema 1 trained with
        return cls(
            data=_section(DataConfig, raw.get("data", {})),
            model=_section(ModelConfig, raw.get("model", {})),
            train=_section(TrainConfig, train),
            out_dir=raw.get("out_dir", "runs"),
            schema_version=SCHEMA_VERSION,
        )

    def save(self, path: str | Path) -> None:
        from tl_desktop.fileio import atomic_write_text

        atomic_write_text(Path(path), json.dumps(self.to_dict(), indent=2, sort_keys=True))

    @classmethod
    def load(cls, path: str | Path) -> "RunConfig":
        try:
            raw = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"cannot read configuration {path}: {exc}") from exc
        return cls.from_dict(raw)


def _section(kind: type, raw: Any) -> Any:
    """One section from its JSON form: unknown names and values of the wrong type are refused here, so
    a type error never reaches ``validate`` or the engine."""
    section = kind.__name__.removesuffix("Config").lower()
    if not isinstance(raw, dict):
        raise ConfigError(f"the {section} settings must be a JSON object, got {_json_kind(raw)}")
    known = {f.name for f in dataclasses.fields(kind)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"unknown {kind.__name__} settings: {', '.join(unknown)}")
    hints = typing.get_type_hints(kind)
    for name, value in raw.items():
        if not _fits(value, hints[name]):
            raise ConfigError(f"{section}.{name} must be {_describe(hints[name])}, got {value!r}")
    return kind(**raw)


def _fits(value: Any, hint: Any) -> bool:
    """Whether a JSON value has the type a config field declares (a whole number is a number too)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Literal:
        return value in args
    if origin in (Union, types.UnionType):
        return any(_fits(value, arg) for arg in args)
    if origin in (list, tuple):
        return isinstance(value, (list, tuple)) and all(_fits(v, args[0]) for v in value if args)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return isinstance(value, hint) if isinstance(hint, type) else True


def _describe(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Literal:
        return " or ".join(repr(a) for a in args)
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if origin in (list, tuple):
        return "a list"
    names = {int: "a whole number", float: "a finite number", str: "text", bool: "true or false",
             type(None): "null"}
    return names.get(hint, getattr(hint, "__name__", str(hint)))


def _json_kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "text", bool: "true/false", type(None): "null"}
    return next((text for kind, text in names.items() if isinstance(value, kind)), f"the number {value!r}")
