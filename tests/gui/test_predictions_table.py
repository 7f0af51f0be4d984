"""The Predict page's folder table: the same answers as `tl-desktop predict --csv`, sorted by probability,
filtered to the unsure ones with their count, thumbnails from the background, and saved where the user says."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tl_desktop.cli import main


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, make_image_folder, tiny_runs) -> Path:
    """A completed tiny-CNN run on three synthetic classes (the backbone stays registered meanwhile)."""
    from tl_desktop.engine.models.backbones import unregister_backbone

    base = tmp_path_factory.mktemp("predictions_table_run")
    tiny_runs.register_tiny_backbone(base)
    yield tiny_runs.train_tiny_run(make_image_folder(base, classes={"a": 6, "b": 6, "c": 6}, size=40),
                                   base / "runs")
    unregister_backbone(tiny_runs.TINY_NAME)


@pytest.fixture
def page(qtbot, tiny_run, settings, dialogs_shown):
    """The Predict page on its own, with the run's model loaded; its tasks are drained at teardown."""
    from tl_desktop.gui.pages.predict_page import PredictPage
    from tl_desktop.gui.session import Session
    from tl_desktop.gui.tasks import shutdown_tasks_within

    session = Session(settings)
    predict = PredictPage(session)
    qtbot.addWidget(predict)
    session.set_run(tiny_run)
    qtbot.waitUntil(lambda: predict.loaded is not None, timeout=60_000)
    yield predict
    assert shutdown_tasks_within(predict)


@pytest.fixture
def new_images(tiny_run: Path, tmp_path: Path) -> Path:
    """Nine images of the run's data in a new folder, and a file that is no image."""
    import shutil

    root = Path(json.loads((tiny_run / "config.json").read_text())["data"]["root"])
    folder = tmp_path / "field visit"
    folder.mkdir()
    for name in ("a", "b", "c"):
        for image in sorted((root / name).iterdir())[:3]:
            shutil.copy(image, folder / image.name)
    (folder / "broken.jpg").write_bytes(b"not an image")
    return folder


def _predict(qtbot, page, folder: Path) -> None:
    page.predict_folder(folder)
    qtbot.waitUntil(lambda: page.folder_result is not None and not page.busy("predict-folder"), timeout=60_000)


def _save_as(monkeypatch, answer: Path | None) -> list[str]:
    """The Save-as dialog answers ``answer`` (None: cancelled); returns the names it proposed."""
    from PySide6.QtWidgets import QFileDialog

    proposed: list[str] = []

    def dialog(parent, caption, start, file_filter, *args, **kwargs):
        proposed.append(start)
        return (str(answer) if answer is not None else "", file_filter)

    monkeypatch.setattr(QFileDialog, "getSaveFileName", dialog)
    return proposed


def test_the_table_shows_the_command_lines_answers(qtbot, page, tiny_run, new_images, tmp_path):
    from tl_desktop.gui.widgets.predictions_table import (
        FILE,
        PROBABILITY,
        PROBLEM,
        SECOND_PROBABILITY,
    )

    cli_csv = tmp_path / "cli.csv"
    assert main(["predict", "--model", str(tiny_run), str(new_images), "--csv", str(cli_csv)]) == 0
    header, *cli_rows = list(csv.reader(cli_csv.open(encoding="utf-8")))
    classes = header[3:-1]
    assert classes == ["a", "b", "c"]

    _predict(qtbot, page, new_images)
    panel = page.folder_panel
    assert page.tabs.currentWidget() is panel
    rows = panel.model.rows
    assert len(rows) == len(cli_rows) == 10
    assert [r.csv_cells(3) for r in rows] == cli_rows  # path, class, probability, every class, error
    for row, cli in zip(rows, cli_rows):
        if cli[-1]:
            assert row.top_class == "" and row.probability is None and row.error == cli[-1]
            continue
        probs = [float(v) for v in cli[3:6]]
        second = sorted(range(3), key=lambda i: -probs[i])[1]
        assert row.second_class == classes[second] and abs(row.second_probability - probs[second]) < 1e-6
    model = panel.model
    index = model.index(0, FILE)
    assert model.data(index) == Path(rows[0].path).name
    assert model.data(model.index(0, PROBABILITY)) == f"{100 * rows[0].probability:.1f}%"
    assert not panel.view.isColumnHidden(PROBLEM)  # the broken file's reason is shown
    summary = panel.summary.text()
    assert "9 images classified" in summary and "1 file could not be read" in summary
    assert "Not saved yet" in summary

    from PySide6.QtCore import Qt

    panel.view.sortByColumn(PROBABILITY, Qt.SortOrder.DescendingOrder)
    shown = [r.probability for r in panel.visible_rows()]
    assert shown[:-1] == sorted(shown[:-1], reverse=True) and shown[-1] is None  # the unreadable file last
    panel.view.sortByColumn(SECOND_PROBABILITY, Qt.SortOrder.AscendingOrder)
    second = [r.second_probability for r in panel.visible_rows()]
    assert second[0] is None and second[1:] == sorted(second[1:])

    answered = sorted(r.probability for r in rows if r.probability is not None)
    threshold = int(100 * answered[4]) + 1  # at least five answers fall below it
    expected = sum(1 for p in answered if p < threshold / 100)
    assert expected >= 5
    panel.threshold.setValue(threshold)
    panel.only_low.setChecked(True)
    assert panel.proxy.rowCount() == expected
    assert all(r.probability < threshold / 100 for r in panel.visible_rows())
    assert panel.low_count.text() == f"{expected} of 9 answers are below {threshold}%"
    panel.only_low.setChecked(False)
    assert panel.proxy.rowCount() == 10

    qtbot.waitUntil(lambda: not panel.loading_thumbnails(), timeout=30_000)
    readable = [i for i, r in enumerate(rows) if not r.error]
    assert all(model.has_thumbnail(i) for i in readable)
    broken = next(i for i, r in enumerate(rows) if r.error)
    assert not model.has_thumbnail(broken)
    assert not model.data(model.index(readable[0], 0), Qt.ItemDataRole.DecorationRole).isNull()


def test_save_as_csv_proposes_a_free_name_and_asks_before_replacing(qtbot, page, tiny_run, new_images, tmp_path,
                                                                    monkeypatch, dialogs_shown):
    cli_csv = tmp_path / "cli.csv"
    assert main(["predict", "--model", str(tiny_run), str(new_images), "--csv", str(cli_csv)]) == 0
    _predict(qtbot, page, new_images)
    panel = page.folder_panel
    assert not list(tmp_path.glob("field visit_predictions*.csv"))  # nothing is written unasked

    default = tmp_path / "field visit_predictions.csv"
    proposed = _save_as(monkeypatch, default)
    panel.save_button.click()
    qtbot.waitUntil(lambda: default.exists() and not page.busy("save-csv"), timeout=10_000)
    assert proposed == [str(default)]
    assert default.read_text(encoding="utf-8") == cli_csv.read_text(encoding="utf-8")
    assert f"Saved in <b>{default}</b>" in panel.summary.text()

    default.write_text("edited by hand\n")
    proposed = _save_as(monkeypatch, default)  # the user picks the existing file anyway
    panel.save_button.click()  # the recorded question answers "Cancel"
    assert proposed == [str(tmp_path / "field visit_predictions-2.csv")]
    assert dialogs_shown and "field visit_predictions.csv already exists" in dialogs_shown[-1]
    assert not page.busy("save-csv") and default.read_text() == "edited by hand\n"

    from tl_desktop.gui.widgets import dialogs

    monkeypatch.setattr(dialogs, "ask_yes_no", lambda *args, **kwargs: True)
    _save_as(monkeypatch, tmp_path / "answers")  # typed without the suffix
    panel.save_button.click()
    qtbot.waitUntil(lambda: (tmp_path / "answers.csv").exists() and not page.busy("save-csv"), timeout=10_000)
    assert (tmp_path / "answers.csv").read_text(encoding="utf-8") == cli_csv.read_text(encoding="utf-8")


def test_double_click_shows_the_image(qtbot, page, new_images):
    _predict(qtbot, page, new_images)
    panel = page.folder_panel
    index = panel.proxy.index(0, 1)
    first = panel.visible_rows()[0]
    panel.view.doubleClicked.emit(index)
    qtbot.waitUntil(lambda: page.last_image is not None, timeout=30_000)
    assert page.last_image == Path(first.path) and page.tabs.currentIndex() == 0
    assert Path(first.path).name in page.answer.text()


def test_the_filter_keeps_the_answers_below_the_threshold_and_counts_them(qtbot):
    from tl_desktop.engine.workflows.prediction import PredictionRow
    from tl_desktop.gui.widgets.predictions_table import PROBLEM, PredictionsPanel

    def row(name: str, top: float) -> PredictionRow:
        return PredictionRow(path=f"/photos/{name}.jpg", probabilities=(top, 1 - top), top_class="healthy",
                             probability=top, second_class="rust", second_probability=1 - top)

    panel = PredictionsPanel()
    qtbot.addWidget(panel)
    rows = [row("sure", 0.97), row("fair", 0.81), row("unsure", 0.55), row("coin", 0.5),
            PredictionRow(path="/photos/empty.jpg", error="not an image file")]
    panel.show_rows("four photos", rows)
    assert panel.low_count.text() == "2 of 4 answers are below 70%"  # the default threshold
    assert panel.proxy.rowCount() == 5  # the filter is off until asked for
    panel.only_low.setChecked(True)
    assert [r.path for r in panel.visible_rows()] == ["/photos/coin.jpg", "/photos/unsure.jpg"]
    panel.threshold.setValue(90)
    assert panel.low_count.text() == "3 of 4 answers are below 90%" and panel.proxy.rowCount() == 3
    panel.threshold.setValue(50)  # below, not at: a 50% answer is not kept
    assert panel.proxy.rowCount() == 0 and panel.low_count.text() == "0 of 4 answers are below 50%"
    panel.show_rows("three photos", rows[:3])
    assert panel.view.isColumnHidden(PROBLEM)  # no unreadable file, no Problem column
    qtbot.waitUntil(lambda: not panel.loading_thumbnails(), timeout=10_000)  # the photos do not exist
    assert not any(panel.model.has_thumbnail(i) for i in range(3))


def test_cancel_stops_classifying_a_folder(qtbot, page, new_images, monkeypatch, dialogs_shown):
    import threading

    from tl_desktop.engine.caching import onnx_models

    started = threading.Event()

    class Slow:
        """Stands in for the inference engine of a very large folder: it runs until asked to stop."""

        def predict_paths(self, paths, progress=None, stop=None):
            started.set()
            while True:
                stop.raise_if_requested()
                threading.Event().wait(0.01)

    monkeypatch.setattr(onnx_models, "inference_predictor", lambda loaded, count: Slow())
    statuses: list[str] = []
    page.status.connect(statuses.append)
    page.predict_folder(new_images)
    assert page.cancel_button.isVisibleTo(page) and page.progress.isVisibleTo(page)
    qtbot.waitUntil(started.is_set, timeout=10_000)
    page.cancel_button.click()
    qtbot.waitUntil(lambda: not page.busy("predict-folder"), timeout=10_000)
    assert statuses[-1] == "Stopped classifying field visit."
    assert not page.cancel_button.isVisibleTo(page) and not page.progress.isVisibleTo(page)
    assert page.folder_result is None and not dialogs_shown
