"""Marking images in the window: from a confusion-matrix cell's images and the enlarged view (opened by a
double-click, with its saliency map), seen on the Data page's checks and in the next run's audit, listed and
undone in the "Marked images" dialog; without a project the user is told to make one."""

from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtCore import Qt

from tests.gui.conftest import _engine_fixtures
from tl_desktop.engine.data.overrides import read_marks


def _stamps(root: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p): (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(root.rglob("*")) if p.is_file()}


def _evaluated(qtbot, window, run: Path):
    window.results_page.open_run(run)
    qtbot.waitUntil(lambda: "val" in window.session.evaluations and not window.results_page.busy(), timeout=30000)
    return window.session.evaluations["val"][0]


def _enlarge(window, predictions, index: int):
    from tl_desktop.gui.widgets.saliency import EnlargeDialog

    dialog = EnlargeDialog(window, predictions, index, window.session.model_path(), window.results_page.marker)
    dialog.show()
    return dialog


def _check_lines(window) -> list[str]:
    return [window.data_page.warnings.item(i).text() for i in range(window.data_page.warnings.count())]


def test_mark_from_a_cell_see_it_on_the_data_page_and_in_the_next_runs_audit_then_undo(
        window, qtbot, scan_folder, make_image_folder, tmp_path, monkeypatch) -> None:
    from tl_desktop.engine.training.trainer import Trainer

    images = make_image_folder(tmp_path, classes={"a": 8, "b": 8}, size=36)
    scan_folder(window, images)
    project = window.projects.new_project(tmp_path / "Leaves")
    qtbot.waitUntil(lambda: window.session.scan is not None and not window.data_page.busy("scan"), timeout=30000)
    before = _stamps(images)
    predictions = _evaluated(qtbot, window, _engine_fixtures.train_tiny_run(images, project.runs_dir))
    results = window.results_page

    first = 0
    true_index, said = int(predictions.labels[first]), int(predictions.predicted()[first])
    cell = results.show_cell(true_index, said)
    qtbot.waitUntil(lambda: not cell.worker.running, timeout=10000)
    cell.grid.setCurrentRow(0)
    excluded_path = cell.paths[0]
    assert "Not marked" in cell.mark_bar.state.text()
    cell.mark_bar.note.setText("blurred")
    with qtbot.waitSignal(window.session.scan_changed, timeout=30000):  # the Data page rescans with the mark
        cell.mark_bar.exclude_button.click()
    assert "Marked: excluded" in cell.mark_bar.state.text() and cell.mark_bar.undo_button.isEnabled()
    assert cell.grid.item(0).text().endswith(" · excluded")
    assert not any(cell.grid.item(i).text().endswith("excluded") for i in range(1, cell.grid.count()))
    (mark,) = read_marks(project.marks_file)
    assert (mark.action, mark.note, images / mark.path) == ("exclude", "blurred", Path(excluded_path))
    qtbot.waitUntil(lambda: not window.data_page.busy("scan"), timeout=30000)
    assert any("Your marks: 1 image excluded by you" in line for line in _check_lines(window))

    # a double-click on a thumbnail enlarges it with its saliency map and the Mark buttons
    item = cell.grid.item(0)
    qtbot.waitExposed(cell)
    centre = cell.grid.visualItemRect(item).center()
    qtbot.mouseClick(cell.grid.viewport(), Qt.MouseButton.LeftButton, pos=centre)  # a double-click's first half
    qtbot.mouseDClick(cell.grid.viewport(), Qt.MouseButton.LeftButton, pos=centre)
    (enlarged,) = cell.enlarged
    assert enlarged.path == excluded_path and "True class" in enlarged.facts.text()
    qtbot.waitUntil(lambda: not enlarged.view.image_label.pixmap().isNull(), timeout=30000)
    assert not enlarged.view.overlay_label.pixmap().isNull()
    assert "Marked: excluded" in enlarged.mark_bar.state.text()
    enlarged.close()

    other = next(i for i, p in enumerate(predictions.paths) if p != excluded_path)
    enlarged = _enlarge(window, predictions, other)
    old_class = predictions.classes[int(predictions.labels[other])]
    new_class = next(c for c in predictions.classes if c != old_class)
    (relabel,) = enlarged.mark_bar.relabel_menu.actions()
    assert relabel.text() == f"Its right class is {new_class}"
    with qtbot.waitSignal(window.session.scan_changed, timeout=30000):
        relabel.trigger()
    qtbot.waitUntil(lambda: not window.data_page.busy("scan"), timeout=30000)
    assert f"really {new_class}" in enlarged.mark_bar.state.text()
    assert any("Your marks: 1 image relabelled by you, 1 excluded" in line for line in _check_lines(window))
    enlarged.close()
    cell.close()

    # the next run trains on what the Data page scanned: its audit lists both marks
    run = Path(Trainer(window.session.config.replace(out_dir=str(project.runs_dir)), window.session.scan).fit().run_dir)
    audit = json.loads((run / "audit.json").read_text())
    relabelled_key = Path(predictions.paths[other]).relative_to(images).as_posix()
    assert audit["relabelled"] == [[relabelled_key, old_class, new_class]]
    assert audit["excluded"] == [Path(excluded_path).relative_to(images).as_posix()]
    assert _stamps(images) == before  # the user's files: same bytes, same times

    marks = results.show_marks()
    assert marks.table.rowCount() == 2 and not marks.undo_button.isEnabled()
    marks.table.selectRow(0)
    with qtbot.waitSignal(window.session.scan_changed, timeout=30000):
        marks.undo_button.click()
    assert marks.table.rowCount() == 1 and marks.table.item(0, 0).text() == relabelled_key
    qtbot.waitUntil(lambda: not window.data_page.busy("scan"), timeout=30000)
    monkeypatch.setattr("tl_desktop.gui.marks_dialog.dialogs.ask_yes_no", lambda *args, **kwargs: True)
    with qtbot.waitSignal(window.session.scan_changed, timeout=30000):
        marks.undo_all_button.click()
    assert marks.table.rowCount() == 0 and read_marks(project.marks_file) == []
    qtbot.waitUntil(lambda: not window.data_page.busy("scan"), timeout=30000)
    assert not any("Your marks" in line for line in _check_lines(window))
    marks.close()


def test_without_a_project_a_mark_asks_for_one(window, qtbot, make_image_folder, dialogs_shown, tmp_path) -> None:
    images = make_image_folder(tmp_path, classes={"a": 4, "b": 4}, size=32)
    predictions = _evaluated(qtbot, window, _engine_fixtures.train_tiny_run(images, tmp_path / "runs"))
    enlarged = _enlarge(window, predictions, 0)
    enlarged.mark_bar.exclude_button.click()
    assert "Marks are kept in a project, and this window has none open." in dialogs_shown[-1]
    assert "File ▸ New project…" in dialogs_shown[-1]
    assert "Not marked" in enlarged.mark_bar.state.text()
    assert not any(tmp_path.rglob("overrides.csv"))
    enlarged.close()


def test_mark_from_the_mistakes_gallery_and_enlarge_a_mistake(
        window, qtbot, scan_folder, make_image_folder, tmp_path) -> None:
    import dataclasses

    from tl_desktop.gui.widgets.saliency import MistakesDialog

    images = make_image_folder(tmp_path, classes={"a": 6, "b": 6}, size=32)
    scan_folder(window, images)
    project = window.projects.new_project(tmp_path / "Gallery")
    qtbot.waitUntil(lambda: window.session.scan is not None and not window.data_page.busy("scan"), timeout=30000)
    predictions = _evaluated(qtbot, window, _engine_fixtures.train_tiny_run(images, project.runs_dir))
    wrong = dataclasses.replace(predictions, probs=predictions.probs[:, ::-1].copy())  # every answer turned wrong
    gallery = MistakesDialog(window, wrong, window.session.model_path(), session=window.session)
    gallery.show()
    first = gallery.mistakes[0]
    assert gallery.mark_bar.path == first.path and "Not marked" in gallery.mark_bar.state.text()
    (relabel,) = gallery.mark_bar.relabel_menu.actions()
    with qtbot.waitSignal(window.session.scan_changed, timeout=30000):
        relabel.trigger()
    (mark,) = read_marks(project.marks_file)
    assert (mark.action, mark.label) == ("relabel", first.predicted_class)
    enlarged = gallery.enlarge(0)
    assert f"the model said <b>{first.predicted_class}</b>" in enlarged.facts.text()
    assert f"really {first.predicted_class}" in enlarged.mark_bar.state.text()
    with qtbot.waitSignal(window.session.marks_changed, timeout=5000):
        enlarged.mark_bar.undo_button.click()
    assert read_marks(project.marks_file) == [] and "Not marked" in gallery.mark_bar.state.text()
    qtbot.waitUntil(lambda: not window.data_page.busy("scan"), timeout=30000)
    enlarged.close()
    gallery.close()
