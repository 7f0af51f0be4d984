"""The run folder: a fresh ``<out_dir>/<YYYYmmdd-HHMMSS>-<backbone>`` per fit, and the one place that
knows the files in it.

::

    config.json       the RunConfig (the run is reproducible from it and its seed)
    split.json        which image went to train / val / test
    audit.json        the data audit
    events.jsonl      one JSON event per line, flushed as it happens
    best.safetensors  the best checkpoint so far (atomic writes)
    resume.safetensors  where the run stood after its last completed epoch (removed when it completes)
    model.tlmodel     the model file, exported from the best checkpoint at the end
    model_card.md     the intended-use text the user edited for the report
    run_label.json    the user's display name and note for the run (the folder itself is never renamed)
    evaluation/       saved evaluations: <split>/ and external-<folder name>-<path hash>/

Importing this module is cheap (no torch): the window reads run folders before torch is loaded.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tl_desktop.config import ConfigError, RunConfig
from tl_desktop.engine.models import MODEL_SUFFIX
from tl_desktop.engine.training.events import (
    EpochEnded,
    Event,
    FitEnded,
    RunStatus,
    event_from_dict,
)
from tl_desktop.fileio import DiskWriteError, atomic_write_bytes, atomic_write_text

if TYPE_CHECKING:
    import torch

    from tl_desktop.engine.data.dataset import ScanResult
    from tl_desktop.engine.data.preprocess import Preprocessing

EXTERNAL_PREFIX = "external-"


@dataclass(frozen=True)
class RunFolder:
    """The layout of one run folder; every reader and writer of a run goes through it."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path).expanduser())

    @classmethod
    def create(cls, out_dir: str | Path, backbone: str) -> RunFolder:
        """Create a fresh ``<out_dir>/<YYYYmmdd-HHMMSS>-<backbone>`` folder (suffixed if taken)."""
        base = f"{datetime.now():%Y%m%d-%H%M%S}-{backbone}"
        for attempt in range(1, 1000):
            path = Path(out_dir) / (base if attempt == 1 else f"{base}-{attempt}")
            try:
                path.mkdir(parents=True, exist_ok=False)
                return cls(path)
            except FileExistsError:
                continue
            except OSError as exc:
                raise DiskWriteError(exc.errno, f"cannot create a run folder in {out_dir}: "
                                                f"{exc.strerror or exc}") from exc
        raise DiskWriteError(f"could not create a new run folder under {out_dir}")

    @classmethod
    def containing(cls, path: str | Path) -> RunFolder | None:
        """The run folder that ``path`` is (or whose model file it is), or None outside a run folder."""
        path = Path(path).expanduser()
        folder = cls(path if path.is_dir() else path.parent)
        usable = folder.model_file.is_file() or folder.best_checkpoint.is_file()
        return folder if folder.split_file.is_file() and usable else None

    # ----- the files ------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.path.name

    @property
    def config_file(self) -> Path:
        return self.path / "config.json"

    @property
    def split_file(self) -> Path:
        return self.path / "split.json"

    @property
    def audit_file(self) -> Path:
        return self.path / "audit.json"

    @property
    def events_file(self) -> Path:
        return self.path / "events.jsonl"

    @property
    def best_checkpoint(self) -> Path:
        return self.path / "best.safetensors"

    @property
    def resume_file(self) -> Path:
        return self.path / "resume.safetensors"

    @property
    def model_file(self) -> Path:
        return self.path / f"model{MODEL_SUFFIX}"

    @property
    def card_file(self) -> Path:
        return self.path / "model_card.md"

    @property
    def label_file(self) -> Path:
        return self.path / "run_label.json"

    @property
    def evaluations_dir(self) -> Path:
        return self.path / "evaluation"

    def split_evaluation_dir(self, split: str) -> Path:
        """Where the evaluation of the run's own ``split`` is saved."""
        return self.evaluations_dir / split

    def external_evaluation_dir(self, folder: str | Path) -> Path:
        """Where the evaluation of an external image ``folder`` is saved: its name and a short hash of its
        absolute path, so ``a/images`` and ``b/images`` never share (and overwrite) one folder."""
        absolute = Path(folder).resolve()
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", absolute.name) or "folder"
        digest = hashlib.sha256(str(absolute).encode("utf-8")).hexdigest()[:6]
        return self.evaluations_dir / f"{EXTERNAL_PREFIX}{name}-{digest}"

    def external_evaluations(self) -> list[Path]:
        """Folders of the saved external evaluations, sorted by name."""
        root = self.evaluations_dir
        if not root.is_dir():
            return []
        return sorted(p for p in root.iterdir()
                      if p.name.startswith(EXTERNAL_PREFIX) and (p / "metrics.json").is_file())

    # ----- what the files say ---------------------------------------------------------------------
    def is_run(self) -> bool:
        """Whether this folder was created by a training run (it has its config)."""
        return self.config_file.is_file()

    def is_complete(self) -> bool:
        """Whether the run produced its model file."""
        return self.model_file.is_file()

    def config(self) -> RunConfig:
        """The run's configuration (migrated to the current schema)."""
        return RunConfig.load(self.config_file)

    def events(self) -> list[Event]:
        """Every readable event of ``events.jsonl`` in order (a torn or unknown line is skipped)."""
        if not self.events_file.is_file():
            return []
        events = []
        for line in self.events_file.read_text(encoding="utf-8").splitlines():
            try:
                raw = json.loads(line)
                events.append(event_from_dict(raw))
            except (ValueError, KeyError, TypeError, AttributeError):
                continue
        return events

    def epoch_history(self) -> list[EpochEnded]:
        """The run's ``EpochEnded`` events, one per epoch (an epoch repeated after a resume counts once,
        as it ran last)."""
        by_epoch = {e.epoch: e for e in self.events() if isinstance(e, EpochEnded)}
        return [by_epoch[epoch] for epoch in sorted(by_epoch)]

    def status(self) -> RunStatus | None:
        """How the run ended, from its last ``FitEnded`` event; None while it runs or after a hard kill."""
        ended = [e for e in self.events() if isinstance(e, FitEnded)]
        return ended[-1].status if ended else None

    def scan(self) -> ScanResult:
        """The split and audit the run trained on (a resumed run goes on with exactly these images)."""
        from tl_desktop.engine.data.audit import Audit
        from tl_desktop.engine.data.dataset import DatasetSplit, ScanResult

        try:
            split = DatasetSplit.from_dict(json.loads(self.split_file.read_text(encoding="utf-8")))
            audit = Audit.from_dict(json.loads(self.audit_file.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"cannot read the split and audit of run {self.path}: {exc}") from exc
        return ScanResult(split=split, audit=audit)

    # ----- writing --------------------------------------------------------------------------------
    def write_records(self, config: RunConfig, scan: ScanResult) -> None:
        """Write ``config.json``, ``split.json`` and ``audit.json`` atomically."""
        config.save(self.config_file)
        atomic_write_text(self.split_file, json.dumps(scan.split.to_dict(), indent=1))
        atomic_write_text(self.audit_file, json.dumps(scan.audit.to_dict(), indent=1))

    def save_checkpoint(self, model: torch.nn.Module) -> Path:
        """Write the model's weights to the best checkpoint atomically; return its path."""
        from tl_desktop.engine.models.bundle import state_bytes

        atomic_write_bytes(self.best_checkpoint, state_bytes(model))
        return self.best_checkpoint

    def export_best_model(self, model: torch.nn.Module, config: RunConfig, classes: list[str],
                          preprocessing: Preprocessing, metrics: dict[str, Any]) -> Path:
        """Load the best checkpoint into ``model`` and write the model file; return its path."""
        from safetensors.torch import load_file

        from tl_desktop.engine.models.bundle import BundleMeta, save_bundle

        device = next(model.parameters()).device
        model.load_state_dict(load_file(str(self.best_checkpoint), device=str(device)), strict=True)
        meta = BundleMeta(
            backbone=config.model.backbone, classes=list(classes), preprocessing=preprocessing.to_dict(),
            config=config.to_dict(), metrics=metrics,
        )
        return save_bundle(self.model_file, model.eval(), meta)

    def build_model_file(self) -> Path:
        """Write the model file from the best checkpoint, for a run killed before it exported its model."""
        from tl_desktop.engine.data.preprocess import with_data_settings
        from tl_desktop.engine.models.backbones import create_model, get_backbone_spec

        config = self.config()
        classes = list(self.scan().split.classes)
        spec = get_backbone_spec(config.model.backbone)
        model = create_model(config.model.backbone, num_classes=len(classes), dropout=config.model.dropout,
                             pretrained=False)
        history = self.epoch_history()
        best = [e for e in history if e.is_best]
        metrics = {"best_epoch": best[-1].epoch if best else None,
                   "val_accuracy": best[-1].val_accuracy if best else None,
                   "val_loss": best[-1].val_loss if best else None,
                   "epochs_completed": history[-1].epoch if history else 0}
        return self.export_best_model(model, config, classes, with_data_settings(spec.preprocessing, config.data),
                                      metrics)


def model_file_of(path_or_run_dir: str | Path, note: Callable[[str], None] | None = None) -> Path:
    """A model file as given, or a run folder's model file. A run killed before it exported its model
    gets one built from its best checkpoint (``note`` is told); a run with neither is refused."""
    path = Path(path_or_run_dir).expanduser()
    if not path.is_dir():
        return path
    folder = RunFolder(path)
    if folder.is_complete():
        return folder.model_file
    if folder.is_run() and folder.best_checkpoint.is_file():
        built = folder.build_model_file()
        if note is not None:
            note(f"{folder.name} had no {built.name} (the run was interrupted); it was built from the run's "
                 f"best checkpoint")
        return built
    from tl_desktop.engine.models.bundle import BundleError

    raise BundleError(f"run folder {path} has no {folder.model_file.name} (did the run finish an epoch?)")
