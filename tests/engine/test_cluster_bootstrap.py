"""Intervals for images that come in groups (patients, fields): whole groups resampled by the bootstrap,
Wilson on a design-effect-corrected sample size for proportions, Obuchowski's clustered AUC variance; the
method and the number of groups recorded in metrics.json; the pooled cross-validation results use them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tl_desktop.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from tl_desktop.engine.data.dataset import Sample, scan_dataset
from tl_desktop.engine.evaluation.bootstrap import (
    CLUSTER,
    PERCENTILE,
    bootstrap_intervals,
)
from tl_desktop.engine.evaluation.evaluate import (
    Predictions,
    compute_metrics,
    interval_groups,
)
from tl_desktop.engine.evaluation.files import save_evaluation, saved_intervals
from tl_desktop.engine.evaluation.formatting import (
    NOT_ESTIMABLE,
    method_label,
    methods_note,
    summary_lines,
)
from tl_desktop.engine.evaluation.intervals import (
    DELONG,
    OBUCHOWSKI,
    WILSON_DESIGN_EFFECT,
    auc_interval,
    clustered_wilson_interval,
    wilson_interval,
)


def _width(ci) -> float:
    return ci.high - ci.low


def _clustered_predictions(n_groups: int = 24, per_group: int = 8, seed: int = 0, own: bool = False) -> Predictions:
    """Two classes; within a group every image has the same class, nearly the same score and the same outcome
    (right or wrong), as images of one patient tend to. ``own``: the same images, each its own group."""
    rng = np.random.default_rng(seed)
    group_class = np.arange(n_groups) % 2
    group_score = np.clip(0.25 + 0.5 * group_class + rng.normal(0, 0.25, n_groups), 0.01, 0.99)
    group_of = np.repeat(np.arange(n_groups), per_group)
    labels = group_class[group_of]
    score = np.clip(group_score[group_of] + rng.normal(0, 0.01, group_of.size), 0.001, 0.999)
    probs = np.c_[1 - score, score]
    paths = [f"img{i:04d}.png" for i in range(group_of.size)]
    groups = paths if own else [f"P{g:02d}" for g in group_of]
    return Predictions(paths, labels, probs, ["healthy", "sick"], groups=list(groups))


def test_one_group_per_class_gives_not_estimable_intervals_without_crashing():
    labels = np.r_[np.zeros(15, int), np.ones(15, int)]
    probs = np.where(labels[:, None] == np.arange(2), 0.9, 0.1)
    probs[0] = [0.3, 0.7]  # one healthy image taken for sick
    predictions = Predictions([f"{i}.png" for i in range(30)], labels, probs, ["healthy", "sick"],
                              groups=["patient-A"] * 15 + ["patient-B"] * 15)
    m = compute_metrics(predictions, n_bootstrap=300, seed=1)
    recall = m.class_intervals["sick"]["recall"]
    assert not recall.estimable and recall.note == "all 15 images are from one group" and recall.value == 1.0
    assert m.intervals["accuracy"].method == WILSON_DESIGN_EFFECT and m.intervals["accuracy"].groups == 2
    assert m.intervals["accuracy"].estimable  # two groups: wide, but an interval
    auc = m.class_intervals["sick"]["auc"]
    assert auc.groups == 2 and "fewer than two groups on one side" in auc.note
    assert m.groups == 2
    text = "\n".join(summary_lines(m))
    assert NOT_ESTIMABLE in text and "over 2 groups" in text
    assert "With only 2 groups the bootstrap intervals are likely too narrow" in methods_note(m)
    json.dumps(m.to_dict())  # every value JSON-safe


def test_one_group_per_class_in_the_bootstrap_itself():
    labels = np.r_[np.zeros(12, int), np.ones(12, int)]
    predicted = labels.copy()
    predicted[:4] = 1
    probs = np.eye(2)[predicted] * 0.8 + 0.1
    headline, per_class = bootstrap_intervals(labels, predicted, probs, ["a", "b"], None, 400, 2, groups=labels)
    assert headline["balanced_accuracy"].method == CLUSTER and headline["balanced_accuracy"].groups == 2
    assert not per_class["a"]["f1"].estimable  # a class missing from about half the resamples
    assert "resamples define it" in per_class["a"]["f1"].note


def test_every_image_its_own_group_matches_the_independent_intervals():
    own = _clustered_predictions(own=True)
    plain = Predictions(own.paths, own.labels, own.probs, own.classes)
    clustered, independent = compute_metrics(own, n_bootstrap=2000, seed=4), compute_metrics(plain, n_bootstrap=2000,
                                                                                            seed=4)
    assert clustered.intervals["balanced_accuracy"].method == CLUSTER
    assert independent.intervals["balanced_accuracy"].method == PERCENTILE
    for key in ("balanced_accuracy", "macro_f1"):
        assert _width(clustered.intervals[key]) == pytest.approx(_width(independent.intervals[key]), rel=0.05)
    # Proportions: only the t quantile on n - 1 degrees of freedom separates the two (a few percent here).
    assert clustered.intervals["accuracy"].method == WILSON_DESIGN_EFFECT
    assert _width(clustered.intervals["accuracy"]) == pytest.approx(_width(independent.intervals["accuracy"]),
                                                                    rel=0.05)
    # Obuchowski's variance is DeLong's when every group holds one image.
    sick = own.labels == 1
    ours = auc_interval(own.probs[:, 1], sick, clusters=np.arange(sick.size))
    delong = auc_interval(own.probs[:, 1], sick)
    assert (ours.method, delong.method) == (OBUCHOWSKI, DELONG)
    assert (ours.low, ours.high) == pytest.approx((delong.low, delong.high), abs=1e-12)


def test_strongly_clustered_images_get_wider_intervals():
    grouped = _clustered_predictions()
    plain = Predictions(grouped.paths, grouped.labels, grouped.probs, grouped.classes)
    clustered, independent = compute_metrics(grouped, n_bootstrap=1000, seed=7), compute_metrics(plain, n_bootstrap=1000,
                                                                                                 seed=7)
    for key in ("accuracy", "balanced_accuracy", "macro_f1", "macro_auc"):
        assert _width(clustered.intervals[key]) > 1.5 * _width(independent.intervals[key]), key
    for key in ("recall", "precision", "auc", "f1"):
        assert _width(clustered.class_intervals["sick"][key]) > _width(independent.class_intervals["sick"][key]), key
    assert method_label(clustered.intervals["balanced_accuracy"]) == "cluster bootstrap over 24 groups"
    assert "24 groups" in methods_note(clustered) and "cluster bootstrap" in methods_note(clustered)
    assert "likely too narrow" not in methods_note(clustered)
    assert "cluster" not in methods_note(independent)


def test_design_effect_wilson_is_never_narrower_than_wilson_and_handles_every_image_right():
    clusters = np.repeat(np.arange(5), 6)
    every = np.ones(30, dtype=bool)
    all_right = clustered_wilson_interval(every, every, clusters)
    plain = wilson_interval(30, 30)
    assert all_right.high == 1.0 and all_right.low < plain.low < 1.0  # 5 groups: wider than 30 independent images
    # Every image right says nothing of how alike a group's images are: the worst case, 5 of 5 groups.
    assert all_right.low == pytest.approx(wilson_interval(5, 5).low)
    # Each group half right: groups vary less than independent images would; never narrower than for those.
    alternate = np.tile([True, False], 15)
    balanced = clustered_wilson_interval(alternate, every, clusters)
    assert (balanced.low, balanced.high) == pytest.approx((wilson_interval(15, 30).low, wilson_interval(15, 30).high))
    # Whole groups right or wrong: worth one image each, Wilson's interval of 3 of 5.
    by_group = np.repeat([True, True, True, False, False], 6)
    grouped = clustered_wilson_interval(by_group, every, clusters)
    assert (grouped.low, grouped.high) == pytest.approx((wilson_interval(3, 5).low, wilson_interval(3, 5).high))
    none = clustered_wilson_interval(alternate, np.zeros(30, dtype=bool), clusters)
    assert not none.estimable and none.value is None


def test_metrics_json_records_the_cluster_method_and_the_number_of_groups(tmp_path: Path):
    grouped = _clustered_predictions(n_groups=10, per_group=3)
    result = compute_metrics(grouped, n_bootstrap=300, seed=0)
    save_evaluation(tmp_path, grouped, result, {"kind": "test"})
    saved = json.loads((tmp_path / "metrics.json").read_text())["metrics"]
    assert saved["groups"] == 10
    assert saved["intervals"]["balanced_accuracy"]["method"] == "cluster_bootstrap_percentile"
    assert saved["intervals"]["balanced_accuracy"]["groups"] == 10
    assert saved["intervals"]["accuracy"]["method"] == "wilson_design_effect"
    assert saved["class_intervals"]["sick"]["auc"]["method"] in ("obuchowski_logit", "hanley_mcneil_score")
    headline, _ = saved_intervals({"metrics": saved})
    assert method_label(headline["accuracy"]) == "Wilson with design effect over 10 groups"
    text = (tmp_path / "predictions.csv").read_text() + (tmp_path / "per_class.csv").read_text()
    assert "P0" not in text  # group names are not written beside the predictions


def test_interval_groups_only_for_groups_the_data_named():
    samples = [Sample("a.png", 0, "P1"), Sample("b.png", 0, "P1"), Sample("c.png", 1, "")]
    assert interval_groups(["a.png", "b.png", "c.png"], samples) == ["group:P1", "group:P1", "image:c.png"]
    copies = [Sample("a.png", 0, "copy:0123456789abcdef"), Sample("b.png", 0, "copy:0123456789abcdef"),
              Sample("c.png", 1, "")]
    assert interval_groups(["a.png", "b.png", "c.png"], copies) is None


@pytest.fixture
def grouped_images(tmp_path: Path, make_image_folder) -> Path:
    """Two classes of 12 images; file names start with one of 6 patients (P0..P5), 2 images per class each."""
    root = make_image_folder(tmp_path, classes={"a": 12, "b": 12}, size=40)
    for name in ("a", "b"):
        for i, path in enumerate(sorted((root / name).iterdir())):
            path.rename(path.with_name(f"P{i % 6}_{path.name}"))
    return root


def test_cross_validation_pools_out_of_fold_results_with_the_cluster_bootstrap(tiny_backbone, grouped_images,
                                                                              tmp_path: Path):
    from tl_desktop.engine.workflows.cross_validation import run_cross_validation
    from tl_desktop.report.cv_report import build_cv_report

    config = RunConfig(data=DataConfig(root=str(grouped_images), val_fraction=0.2, group_by=r"re:^[a-z]+/(P\d+)_"),
                       model=ModelConfig(backbone="tiny_cnn", trainable_blocks=0, dropout=0.0),
                       train=TrainConfig(epochs=1, head_epochs=1, batch_size=4, early_stopping_patience=0),
                       out_dir=str(tmp_path / "runs"))
    result = run_cross_validation(config, scan_dataset(config.data), 3)
    assert result.status == "completed"
    pooled = result.summary["out_of_fold"]
    held_out_groups = {s.group for fold in result.folder.plan().folds for s in fold.test}
    assert pooled["groups"] == len(held_out_groups) >= 4  # the patients outside the test part
    assert pooled["intervals"]["balanced_accuracy"]["method"] == CLUSTER
    assert pooled["intervals"]["balanced_accuracy"]["groups"] == len(held_out_groups)
    assert pooled["intervals"]["accuracy"]["method"] == WILSON_DESIGN_EFFECT
    fold = json.loads((result.folder.fold(1).split_evaluation_dir("test") / "metrics.json").read_text())["metrics"]
    assert fold["intervals"]["accuracy"]["method"] == WILSON_DESIGN_EFFECT  # a fold's own evaluation too
    report = build_cv_report(result.folder.path)
    html = Path(report.html).read_text(encoding="utf-8")
    assert f"account for the {len(held_out_groups)} groups" in html and "as independent" not in html
    assert f"over {len(held_out_groups)} groups" in html
