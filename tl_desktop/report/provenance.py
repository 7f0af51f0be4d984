"""Report blocks describing the data, the model and its settings, and the training run."""

from __future__ import annotations

from functools import partial
from typing import Any

from tl_desktop.config import TrainConfig
from tl_desktop.report import figures
from tl_desktop.report.blocks import Bullets, Fig, Para, Table
from tl_desktop.report.data import ReportData

SPLIT_NAMES = {"train": "Training", "val": "Validation", "test": "Test"}
MAX_LISTED = 8


def dataset_blocks(data: ReportData) -> list[Any]:
    """Classes and counts per split, how the split was made, and what the audit found."""
    cfg = data.config.data
    audit = data.audit
    if audit is None:
        return [Para(f"Images from {cfg.labels or cfg.root or 'an unknown folder'}. The run folder has no "
                     "audit.json, so counts per split are not available.")]
    if audit.layout == "folders":
        how = "The folder's own train/val/test sub-folders were used as the split."
    elif audit.layout == "table-split":
        how = "The label table's own split column (train/val/test) was used as the split."
    elif audit.leakage.group_count:
        how = (f"Split automatically by group ({audit.leakage.group_source}), with seed {cfg.seed}: whole groups "
               f"went to validation (about {cfg.val_fraction:.0%}) and test (about {cfg.test_fraction:.0%}), "
               "stratified by class as far as the groups allow (identical images kept together).")
    else:
        how = (f"Split automatically, per class, with seed {cfg.seed}: "
               f"{cfg.val_fraction:.0%} validation, {cfg.test_fraction:.0%} test, the rest "
               "training (identical images kept in the same split).")
    rows = []
    for name in audit.classes:
        counts = audit.counts.get(name, {})
        rows.append([name, *(str(counts.get(s, 0)) for s in SPLIT_NAMES), str(sum(counts.values()))])
    totals = audit.split_totals()
    rows.append(["all classes", *(str(totals.get(s, 0)) for s in SPLIT_NAMES), str(sum(totals.values()))])
    sizes = audit.sizes
    findings = [f"Image sizes: {sizes.min_width}×{sizes.min_height} to {sizes.max_width}×{sizes.max_height} pixels "
                f"(median {sizes.median_width}×{sizes.median_height})."]
    findings.append(f"Class balance: the largest class has {audit.imbalance_ratio:.1f}× the images of the smallest"
                    + (" — imbalanced." if audit.imbalanced else "."))
    findings.append(f"Unreadable files skipped: {len(audit.unreadable)}"
                    + (": " + "; ".join(f"{p} ({r})" for p, r in audit.unreadable[:MAX_LISTED]) if audit.unreadable
                       else ".") + (" …" if len(audit.unreadable) > MAX_LISTED else ""))
    findings.append(f"Groups of identical images: {len(audit.duplicate_groups)}; across splits: "
                    f"{len(audit.cross_split_duplicates)}; across classes (conflicting labels): "
                    f"{len(audit.cross_class_duplicates)}.")
    findings += [f"{line}." for line in audit.property_lines()]
    findings += [line.strip() for line in audit.leakage.lines(audit.root)]
    findings += [f"Warning: {w}" for w in audit.warnings]
    return [Para(f"Images from {audit.table or audit.root}. {how}"),
            Table(["Class", *SPLIT_NAMES.values(), "Total"], rows, "Images per class and split."),
            Para("Data-quality findings:"), Bullets(findings)]


def _trainable_text(data: ReportData) -> str:
    blocks = data.config.model.trainable_blocks
    total = data.num_blocks
    if blocks == 0:
        return "none: the pretrained backbone stays frozen and only the new head trains"
    if blocks == "all":
        return f"all {total} blocks train (nothing frozen)" if total else "all blocks train"
    after = "the linear probe" if data.config.train.recipe == "lp-ft" else "the head-only epochs"
    if total is None:
        return f"the top {blocks} blocks train after {after}"
    return (f"the top {blocks} of {total} blocks train after {after}; the lower "
            f"{max(total - int(blocks), 0)} stay frozen at their pretrained values")


def _epochs_text(train: TrainConfig) -> str:
    if train.recipe == "lp-ft":
        return (f"{train.epochs} in all; epoch 1 fits the new head as a linear probe on the frozen features "
                "(L2-regularised logistic regression, its strength chosen on validation) and the others train on "
                "from it (LP-FT); the best epoch on validation is kept, the probe included")
    return f"{train.epochs} in all; the first {train.head_epochs} train the new head only"


def model_blocks(data: ReportData) -> list[Any]:
    """Backbone, freezing, hyper-parameters, seeds, device, calibration and library versions."""
    model, train, cfg_data = data.config.model, data.config.train, data.config.data
    finetune = [p for p in data.phases if p.phase == "finetune"]
    phase_params = finetune[-1] if finetune else (data.phases[-1] if data.phases else None)
    rows = [
        ["Backbone", f"{data.backbone_title} ({data.meta.backbone}), ImageNet-pretrained"],
        ["Trainable blocks", _trainable_text(data)],
        ["Parameters trained", f"{phase_params.trainable_params:,} of {phase_params.total_params:,}"
         if phase_params else "not recorded"],
        ["Input", f"short side resized to {data.meta.preprocessing.get('resize_size')} px, centre crop "
                  f"{data.meta.preprocessing.get('input_size')} px"],
        ["Epochs", _epochs_text(train)],
        ["Batch size", str(train.batch_size)],
        ["Learning rates", f"head {train.lr}, fine-tuning {train.finetune_lr} (AdamW, warm-up then "
                           f"cosine); weight decay {train.weight_decay}"],
        ["Regularisation", f"dropout {model.dropout}, label smoothing {train.label_smoothing}, "
                           f"augmentation '{train.augmentation}'"],
        ["Class balancing", str(train.class_balance)],
        ["Early stopping", f"patience {train.early_stopping_patience} epochs"
         if train.early_stopping_patience else "off"],
        ["Seeds", f"split {cfg_data.seed}, training {train.seed}"],
        ["Device", data.started.device if data.started else str(train.device)],
        ["Temperature", f"{data.meta.temperature:.3f}" + (" (fitted on the validation split)"
                                                           if data.meta.temperature != 1.0 else " (not calibrated)")],
        ["Model file created", str(data.meta.created)],
    ]
    versions = [[k, str(v)] for k, v in sorted(data.meta.versions.items())]
    return [Table(["Setting", "Value"], rows, "How the model was trained (from the run's config.json)."),
            Para("Library versions used to train:"), Table(["Library", "Version"], versions)]


def training_blocks(data: ReportData) -> list[Any]:
    """Training curves and how the run ended."""
    ended = data.ended
    if ended is None:
        summary = "The event log has no end record; the run may have been interrupted."
    else:
        best = (f"best validation accuracy {ended.best_val_accuracy:.1%} at epoch {ended.best_epoch}"
                if ended.best_val_accuracy is not None else "no best epoch recorded")
        summary = (f"Status: {ended.status}. {ended.epochs_completed} epochs in {ended.seconds / 60:.1f} minutes; "
                   f"{best}. The exported model holds the weights of the best epoch.")
        if ended.error:
            summary += f" Error: {ended.error}"
    caption = ("Left: loss; right: accuracy, on training (blue) and validation (red) images. A widening gap means "
               "over-fitting.")
    if any(p.phase == "finetune" for p in data.phases):
        caption += " The dotted line marks where fine-tuning of the backbone blocks began."
    return [Para(summary), Fig(partial(figures.training_curves_figure, data.history), caption, 1.0)]
