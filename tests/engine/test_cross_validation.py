"""Cross-validation: grouped folds, one run per fold sharing one feature pool, pooled out-of-fold results,
stop and resume."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tl_desktop.config import (
    ConfigError,
    DataConfig,
    ModelConfig,
    RunConfig,
    TrainConfig,
)
from tl_desktop.engine.caching.store import CacheStore
from tl_desktop.engine.data.dataset import Sample, scan_dataset
from tl_desktop.engine.data.folds import grouped_folds
from tl_desktop.engine.data.scanning import DataError
from tl_desktop.engine.evaluation.folds import across_folds
from tl_desktop.engine.runtime.stop import StopToken
from tl_desktop.engine.workflows.cross_validation import (
    FoldEnded,
    FoldStarted,
    plan_cross_validation,
    resume_cross_validation,
    run_cross_validation,
)


def make_config(root: Path, out: Path, blocks: int | str = 0, **train) -> RunConfig:
    train_cfg = dict(epochs=2, head_epochs=1, batch_size=4, early_stopping_patience=0, augmentation="light")
    train_cfg.update(train)
    return RunConfig(data=DataConfig(root=str(root), val_fraction=0.2),
                     model=ModelConfig(backbone="tiny_cnn", trainable_blocks=blocks, dropout=0.0),
                     train=TrainConfig(**train_cfg), out_dir=str(out))


@pytest.fixture
def images(tmp_path, make_image_folder) -> Path:
    return make_image_folder(tmp_path, classes={"a": 10, "b": 10}, size=40)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 11)), min_size=12, max_size=60), st.integers(2, 5),
       st.integers(0, 10**6))
def test_folds_keep_groups_whole_and_hold_out_each_image_once(rows, k, seed):
    samples = [Sample(f"img{i:03d}.png", label, f"g{group}") for i, (label, group) in enumerate(rows)]
    if len({s.group for s in samples}) < k:
        with pytest.raises(DataError, match="groups"):
            grouped_folds(samples, k, seed)
        return
    folds = grouped_folds(samples, k, seed)
    assert len(folds) == k
    held = [s.path for _, part in folds for s in part]
    assert sorted(held) == sorted(s.path for s in samples)  # each image held out exactly once
    for train, part in folds:
        assert {s.group for s in train}.isdisjoint({s.group for s in part})
        assert len(train) + len(part) == len(samples)
    assert grouped_folds(list(reversed(samples)), k, seed) == folds  # the order given does not matter


def test_interval_across_folds_is_students_t():
    found = across_folds([0.8, 0.9, 0.85, None])
    assert found.folds == 3 and found.mean == pytest.approx(0.85) and found.sd == pytest.approx(0.05)
    assert found.low == pytest.approx(0.85 - 4.302653 * 0.05 / 3**0.5, abs=1e-5)
    assert across_folds([None]) is None and across_folds([0.7]).sd is None


def test_plan_refuses_a_bad_number_of_folds(images, tmp_path):
    config = make_config(images, tmp_path / "runs")
    scan = scan_dataset(config.data)
    with pytest.raises(ConfigError, match="between 2 and 20"):
        plan_cross_validation(config, scan, 1)


def test_cross_validation_pools_held_out_predictions_and_shares_features(tiny_backbone, images, tmp_path):
    config = make_config(images, tmp_path / "runs")
    scan = scan_dataset(config.data)
    seen: list[object] = []
    result = run_cross_validation(config, scan, 3, on_fold=seen.append)
    assert result.status == "completed"
    assert [type(e) for e in seen] == [FoldStarted, FoldEnded] * 3
    folder = result.folder
    plan = folder.plan()
    held = [s.path for fold in plan.folds for s in fold.test]
    assert sorted(held) == sorted(s.path for s in [*scan.split.train, *scan.split.val])
    for fold in plan.folds:  # nothing a fold trains or validates on is in its held-out part
        assert {s.path for s in fold.test}.isdisjoint({s.path for s in [*fold.train, *fold.val]})
    with open(folder.oof_file, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(r["path"] for r in rows) == sorted(held)
    summary = json.loads(folder.summary_file.read_text())
    assert summary["folds_done"] == 3 and summary["out_of_fold"]["num_samples"] == len(held)
    assert summary["across_folds"]["accuracy"]["folds"] == 3
    assert (folder.fold(1).split_evaluation_dir("test") / "metrics.json").is_file()
    # the frozen part ran once for the pool: one pooled-feature entry per view kind, not one per fold
    entries = [json.loads(p.read_text())["description"] for p in CacheStore().root.glob("features/*/entry.json")]
    pooled = [d for d in entries if "pooled features" in d]
    assert len(pooled) == 2, entries
    assert all(f", {len(held)} images" in d for d in pooled)


def test_a_stopped_cross_validation_resumes_with_the_remaining_folds(tiny_backbone, images, tmp_path):
    config = make_config(images, tmp_path / "runs")
    scan = scan_dataset(config.data)
    stop = StopToken()

    def stop_after_first(event):
        if isinstance(event, FoldEnded) and event.index == 1:
            stop.request()

    first = run_cross_validation(config, scan, 3, on_fold=stop_after_first, stop=stop)
    assert first.status == "stopped" and first.summary["folds_done"] == 1
    started: list[int] = []
    resumed = resume_cross_validation(first.folder.path,
                                      on_fold=lambda e: started.append(e.index) if isinstance(e, FoldStarted) else None)
    assert resumed.status == "completed" and started == [2, 3]
    assert resumed.summary["folds_done"] == 3


def test_final_model_trains_on_everything_outside_the_test_part(tiny_backbone, images, tmp_path):
    config = make_config(images, tmp_path / "runs", blocks=1)
    scan = scan_dataset(config.data)
    result = run_cross_validation(config, scan, 2, final_model=True)
    assert result.status == "completed" and result.folder.final.is_complete()
    assert result.summary["final_model"] == str(result.folder.final.model_file)
    from tl_desktop.report.build import build_report

    report = build_report(result.folder.final.path, n_bootstrap=50)
    titles = [title for title, _first, _last in report.sections]
    assert titles.index("Cross-validation of these settings") == titles.index("Most confident mistakes") - 1
    html = report.html.read_text(encoding="utf-8")
    assert result.folder.name in html and "pooled out-of-fold" in html and "Out-of-fold predictions" in html
    fold_report = build_report(result.folder.fold(1).path, n_bootstrap=50)
    assert "Cross-validation of these settings" not in [title for title, _f, _l in fold_report.sections]
