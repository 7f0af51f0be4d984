"""The cross-validation folder: the one place that knows its files.

::

    cv.json               the plan: settings, number of folds, the data's split and each fold's split
    audit.json            the data audit of the whole scan
    fold-1/ … fold-k/     one run folder per fold; its test part is the fold's held-out part
    summary.json          each fold's figures, their summary across folds, the pooled out-of-fold metrics
    folds.csv             one row per fold (the fold table)
    oof_predictions.csv   every out-of-fold prediction: path, fold, true and predicted class, probabilities
    final/                optional: the final model, trained on every image outside the test part

Importing this module is cheap (no torch): the window lists CV folders before torch is loaded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tl_desktop.config import ConfigError, RunConfig
from tl_desktop.engine.training.runfolder import RunFolder
from tl_desktop.fileio import DiskWriteError, atomic_write_text

if TYPE_CHECKING:
    from tl_desktop.engine.data.audit import Audit
    from tl_desktop.engine.data.dataset import DatasetSplit

PLAN_FORMAT = 1


@dataclass(frozen=True)
class CVPlan:
    """What a cross-validation runs: the settings, the scanned data and each fold's split."""

    config: RunConfig
    data: DatasetSplit
    folds: list[DatasetSplit]
    final_model: bool

    def to_dict(self) -> dict[str, Any]:
        return {"format": PLAN_FORMAT, "config": self.config.to_dict(), "data": self.data.to_dict(),
                "folds": [fold.to_dict() for fold in self.folds], "final_model": self.final_model}


@dataclass(frozen=True)
class CVFolder:
    """The layout of one cross-validation folder."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path).expanduser())

    @classmethod
    def create(cls, out_dir: str | Path, backbone: str) -> CVFolder:
        """Create a fresh ``<out_dir>/<YYYYmmdd-HHMMSS>-cv-<backbone>`` folder (suffixed if taken)."""
        base = f"{datetime.now():%Y%m%d-%H%M%S}-cv-{backbone}"
        for attempt in range(1, 1000):
            path = Path(out_dir) / (base if attempt == 1 else f"{base}-{attempt}")
            try:
                path.mkdir(parents=True, exist_ok=False)
                return cls(path)
            except FileExistsError:
                continue
            except OSError as exc:
                raise DiskWriteError(exc.errno, f"cannot create a cross-validation folder in {out_dir}: "
                                                f"{exc.strerror or exc}") from exc
        raise DiskWriteError(f"could not create a new cross-validation folder under {out_dir}")

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def plan_file(self) -> Path:
        return self.path / "cv.json"

    @property
    def audit_file(self) -> Path:
        return self.path / "audit.json"

    @property
    def summary_file(self) -> Path:
        return self.path / "summary.json"

    @property
    def folds_table(self) -> Path:
        return self.path / "folds.csv"

    @property
    def oof_file(self) -> Path:
        return self.path / "oof_predictions.csv"

    def fold(self, index: int) -> RunFolder:
        """The run folder of fold ``index`` (counted from 1)."""
        return RunFolder(self.path / f"fold-{index}")

    @property
    def final(self) -> RunFolder:
        return RunFolder(self.path / "final")

    def is_cv(self) -> bool:
        return self.plan_file.is_file()

    def write_plan(self, plan: CVPlan, audit: Audit) -> None:
        atomic_write_text(self.plan_file, json.dumps(plan.to_dict(), indent=1))
        atomic_write_text(self.audit_file, json.dumps(audit.to_dict(), indent=1))

    def plan(self) -> CVPlan:
        """The plan written when the cross-validation started (to resume it or report on it)."""
        from tl_desktop.engine.data.dataset import DatasetSplit

        try:
            raw = json.loads(self.plan_file.read_text(encoding="utf-8"))
            if raw.get("format") != PLAN_FORMAT:
                raise ValueError(f"unknown format {raw.get('format')!r}")
            return CVPlan(config=RunConfig.from_dict(raw["config"]), data=DatasetSplit.from_dict(raw["data"]),
                          folds=[DatasetSplit.from_dict(f) for f in raw["folds"]],
                          final_model=bool(raw.get("final_model", False)))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{self.path} is not a readable cross-validation folder ({self.plan_file.name}: "
                              f"{exc})") from exc

    def audit(self) -> Audit:
        from tl_desktop.engine.data.audit import Audit

        try:
            return Audit.from_dict(json.loads(self.audit_file.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"cannot read the audit of {self.path}: {exc}") from exc

    def summary(self) -> dict[str, Any] | None:
        """The saved summary, or None before the first fold ended."""
        try:
            return json.loads(self.summary_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
