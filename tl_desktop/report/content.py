"""Everything a report shows, gathered from a run folder (no rendering here).

Reads the run folder's config, audit, events and model file; evaluates the model on
the run's validation and test splits; reloads external evaluations saved under
the run folder; and computes saliency overlays for the most confidently wrong images.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image

from tl_desktop.engine.evaluation.evaluate import (
    EvaluationError,
    compute_metrics,
    evaluate_run,
    misclassified,
)
from tl_desktop.engine.training.events import (
    EpochEnded,
    FitEnded,
    FitStarted,
    PhaseStarted,
)
from tl_desktop.engine.training.runfolder import RunFolder, model_file_of
from tl_desktop.report.data import EvaluationSection, MistakeImage, ReportData
from tl_desktop.report.model_card import default_model_card

MAX_MISTAKES = 8
THUMB_SIZE = 320
ProgressFn = Callable[[str], None]

def _load_audit(run: RunFolder) -> Any:
    from tl_desktop.engine.data.audit import Audit

    if not run.audit_file.is_file():
        return None
    try:
        return Audit.from_dict(json.loads(run.audit_file.read_text(encoding="utf-8")))
    except (ValueError, KeyError, TypeError):
        return None


def _thumbnail(image: Image.Image) -> Image.Image:
    thumb = image.copy()
    thumb.thumbnail((THUMB_SIZE, THUMB_SIZE))
    return thumb


def mistake_images(loaded: Any, sections: list[EvaluationSection], limit: int = MAX_MISTAKES
                   ) -> tuple[list[MistakeImage], list[str]]:
    """The most confidently wrong images of all ``sections`` with Grad-CAM overlays; unreadable files become notes."""
    from tl_desktop.engine.data.images import ImageLoadError
    from tl_desktop.engine.data.preprocess import load_for_model
    from tl_desktop.engine.evaluation.saliency import explain, overlay

    candidates = [(m, s.title) for s in sections for m in misclassified(s.predictions)]
    candidates.sort(key=lambda item: -item[0].confidence)
    found, notes = [], []
    for mistake, source in candidates[:limit]:
        try:
            image = load_for_model(mistake.path, loaded.preprocessing)
        except ImageLoadError as exc:
            notes.append(f"{mistake.path}: {exc.reason}")
            continue
        explanation = explain(loaded, image, target=loaded.classes.index(mistake.predicted_class))
        found.append(MistakeImage(source, mistake.path, mistake.true_class, mistake.predicted_class,
                                  mistake.confidence, _thumbnail(image), _thumbnail(overlay(image, explanation.heatmap))))
    return found, notes


def _evaluations(run: RunFolder, n_bootstrap: int, seed: int, say: ProgressFn, stop: Any
                 ) -> tuple[list[EvaluationSection], list[str]]:
    """The run's validation and test splits evaluated now, and its saved external evaluations reloaded."""
    from tl_desktop.engine.evaluation.files import load_evaluation

    evaluations, notes = [], []
    for split, title in (("val", "Validation split"), ("test", "Test split")):
        say(f"Evaluating the {title.lower()}")
        try:
            predictions, result = evaluate_run(run.path, split, stop=stop, n_bootstrap=n_bootstrap, seed=seed)
        except EvaluationError as exc:
            notes.append(f"{title} left out of this report: {exc}")
            continue
        if predictions.failures:
            notes.append(f"{title}: {len(predictions.failures)} of {len(predictions) + len(predictions.failures)} "
                         f"images could not be read (moved or deleted?); its results cover the other "
                         f"{len(predictions)} only")
        evaluations.append(EvaluationSection(split, title, f"the {len(predictions)} images the run set aside "
                                             f"as its {'validation' if split == 'val' else 'test'} split",
                                             predictions, result))
    for folder in run.external_evaluations():
        say(f"Reading the external evaluation {folder.name}")
        try:
            predictions, payload = load_evaluation(folder)
        except EvaluationError as exc:
            notes.append(str(exc))
            continue
        source = payload.get("source", {}).get("folder", folder.name)
        evaluations.append(EvaluationSection(
            folder.name, f"External: {Path(Path(source).parent.name, Path(source).name).as_posix()}",
            f"all {len(predictions)} images of {source}",
            predictions, compute_metrics(predictions, n_bootstrap=n_bootstrap, seed=seed)))
    return evaluations, notes


def gather_report(run_dir: str | Path, model_card: str | None = None, n_bootstrap: int = 1000, seed: int = 0,
                  progress: ProgressFn | None = None, stop: Any = None) -> ReportData:
    """Collect (and compute) everything a report of ``run_dir`` shows."""
    from tl_desktop.config import ConfigError
    from tl_desktop.engine.models.backbones import BackboneError, get_backbone_spec
    from tl_desktop.engine.models.bundle import load_bundle, utc_now

    run = RunFolder(Path(run_dir))
    say = progress or (lambda _text: None)
    if not run.is_run():
        raise EvaluationError(f"{run.path} is not a run folder (it has no {run.config_file.name})")
    try:
        config = run.config()
    except ConfigError as exc:
        raise EvaluationError(str(exc)) from exc
    say("Loading the model")
    loaded = load_bundle(model_file_of(run.path))
    events = run.events()
    evaluations, notes = _evaluations(run, n_bootstrap, seed, say, stop)
    if not evaluations:
        raise EvaluationError(f"nothing of run {run.name} could be evaluated, so its report would hold no results: "
                              + "; ".join(notes))
    say("Computing saliency maps of the most confident mistakes")
    mistakes, unreadable = mistake_images(loaded, evaluations)
    notes += [f"Could not show {text}" for text in unreadable]
    try:
        spec = get_backbone_spec(loaded.meta.backbone)
        backbone_title, num_blocks = spec.title, spec.num_blocks
    except BackboneError:
        backbone_title, num_blocks = loaded.meta.backbone, None
    from tl_desktop.report.cv_sections import final_model_estimate

    data = ReportData(
        run_dir=run.path, run_name=run.name, generated=utc_now(), config=config, meta=loaded.meta,
        audit=_load_audit(run), history=[e for e in events if isinstance(e, EpochEnded)],
        phases=[e for e in events if isinstance(e, PhaseStarted)],
        started=next((e for e in events if isinstance(e, FitStarted)), None),
        ended=next((e for e in reversed(events) if isinstance(e, FitEnded)), None),
        evaluations=evaluations, mistakes=mistakes,
        mistakes_source=", ".join(e.title.lower() for e in evaluations), model_card="",
        backbone_title=backbone_title, num_blocks=num_blocks, notes=notes,
        cross_validation=final_model_estimate(run.path, n_bootstrap, seed))
    data.model_card = model_card if model_card is not None else default_model_card(data)
    return data
