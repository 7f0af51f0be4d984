"""Every save in the window avoids replacing a user's file unasked: the Save-as dialog proposes a free name,
replacing is asked first, and a save of several files offers to keep both (free names), replace, or cancel."""

from __future__ import annotations

from pathlib import Path

import pytest

EDITED = "edited by hand, keep me\n"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, make_image_folder, tiny_runs) -> Path:
    """A completed tiny-CNN run on two synthetic classes (the backbone stays registered meanwhile)."""
    from tl_desktop.engine.models.backbones import unregister_backbone

    base = tmp_path_factory.mktemp("save_as_run")
    tiny_runs.register_tiny_backbone(base)
    yield tiny_runs.train_tiny_run(make_image_folder(base, classes={"a": 6, "b": 6}, size=40), base / "runs")
    unregister_backbone(tiny_runs.TINY_NAME)


def _save_as(monkeypatch, answer: Path | None) -> list[str]:
    """The Save-as dialog answers ``answer`` (None: cancelled); returns the names it proposed."""
    from PySide6.QtWidgets import QFileDialog

    proposed: list[str] = []

    def dialog(parent, caption, start, file_filter, *args, **kwargs):
        proposed.append(start)
        return (str(answer) if answer is not None else "", file_filter)

    monkeypatch.setattr(QFileDialog, "getSaveFileName", dialog)
    return proposed


def _answer_with(monkeypatch, button_text: str | None) -> list[str]:
    """Message boxes are answered by clicking the button with ``button_text`` (None: closed); returns their texts."""
    from PySide6.QtWidgets import QMessageBox

    asked: list[str] = []

    def answer(box: QMessageBox) -> int:
        asked.append(f"{box.text()} | {box.informativeText()}")
        if button_text is not None:
            next(b for b in box.buttons() if b.text() == button_text).click()
        return 0

    monkeypatch.setattr(QMessageBox, "exec", answer)
    return asked


def test_the_save_as_dialog_proposes_a_free_name_and_asks_before_replacing(qtbot, tmp_path, monkeypatch):
    from tl_desktop.gui.widgets import dialogs

    def beside(path: Path) -> list[Path]:
        return [path.with_suffix(".notes.txt")]

    (tmp_path / "answers.csv").write_text(EDITED)
    (tmp_path / "answers-2.notes.txt").write_text(EDITED)  # a companion file makes -2 taken too
    asked = _answer_with(monkeypatch, "Cancel")
    proposed = _save_as(monkeypatch, None)
    assert dialogs.ask_save_path(None, "Save", tmp_path / "answers.csv", "CSV (*.csv)", ".csv", beside) is None
    assert proposed == [str(tmp_path / "answers-3.csv")] and not asked

    _save_as(monkeypatch, tmp_path / "ANSWERS-3.CSV")  # a free name typed in capitals keeps its name
    assert dialogs.ask_save_path(None, "Save", tmp_path / "answers.csv", "", ".csv") == tmp_path / "ANSWERS-3.csv"
    _save_as(monkeypatch, tmp_path / "answers")  # typed without the suffix: it is the existing file
    assert dialogs.ask_save_path(None, "Save", tmp_path / "answers.csv", "", ".csv") is None
    assert asked == [f"answers.csv already exists in {tmp_path}. | Replace it with the new file? "
                     "The old content cannot be recovered."]
    assert (tmp_path / "answers.csv").read_text() == EDITED

    _answer_with(monkeypatch, "Replace")
    assert dialogs.ask_save_path(None, "Save", tmp_path / "answers.csv", "", ".csv") == tmp_path / "answers.csv"


def test_saving_several_files_keeps_both_replaces_or_cancels(qtbot, tmp_path, monkeypatch):
    from tl_desktop.gui.widgets import dialogs

    targets = [tmp_path / "metrics.json", tmp_path / "predictions.csv"]
    asked = _answer_with(monkeypatch, "Keep both")
    assert dialogs.choose_targets(None, targets) == targets and not asked  # nothing to replace, nothing asked

    targets[1].write_text(EDITED)
    (tmp_path / "metrics-2.json").write_text(EDITED)
    assert dialogs.choose_targets(None, targets) == [tmp_path / "metrics-3.json", tmp_path / "predictions-3.csv"]
    assert asked[0].startswith(f"predictions.csv already exists in {tmp_path}. | Keep them and save the new files "
                               "with new names (metrics-3.json and predictions-3.csv)")
    _answer_with(monkeypatch, "Replace")
    assert dialogs.choose_targets(None, targets) == targets
    _answer_with(monkeypatch, "Cancel")
    assert dialogs.choose_targets(None, targets) is None
    _answer_with(monkeypatch, None)  # the box closed with Escape
    assert dialogs.choose_targets(None, targets) is None


@pytest.fixture
def export_page(qtbot, tiny_run, settings):
    from tl_desktop.gui.pages.export_page import ExportPage
    from tl_desktop.gui.session import Session
    from tl_desktop.gui.tasks import shutdown_tasks_within

    session = Session(settings)
    page = ExportPage(session)
    qtbot.addWidget(page)
    session.set_run(tiny_run)
    yield page
    assert shutdown_tasks_within(page)


def test_export_never_replaces_an_edited_file_unasked(qtbot, export_page, tiny_run, tmp_path, monkeypatch):
    page = export_page
    out = tmp_path / "exported"
    out.mkdir()
    (out / "predictions.csv").write_text(EDITED)
    page.folder.set_path(str(out))
    names = {f"{tiny_run.name}.tlmodel", "confusion_matrix.png", "confusion_matrix_normalised.png",
             "metrics_per_class.csv", "predictions.csv", "metrics.json"}

    asked = _answer_with(monkeypatch, "Cancel")
    page.export_button.click()
    assert not page.busy("export") and {p.name for p in out.iterdir()} == {"predictions.csv"}
    assert asked and asked[0].startswith("predictions.csv already exists")
    assert page.result.text() == "Nothing was exported."

    _answer_with(monkeypatch, "Keep both")
    page.export_button.click()
    qtbot.waitUntil(lambda: not page.busy("export"), timeout=60_000)
    renamed = {f"{Path(n).stem}-2{Path(n).suffix}" for n in names}
    assert {p.name for p in out.iterdir()} == renamed | {"predictions.csv"}
    assert (out / "predictions.csv").read_text() == EDITED
    assert (out / "predictions-2.csv").read_text().startswith("path,")
    assert (out / f"{tiny_run.name}-2.tlmodel").read_bytes() == (tiny_run / "model.tlmodel").read_bytes()
    assert (out / "confusion_matrix-2.png").read_bytes()[:4] == b"\x89PNG"
    assert "predictions-2.csv" in page.result.text()

    _answer_with(monkeypatch, "Replace")
    page.export_button.click()
    qtbot.waitUntil(lambda: not page.busy("export"), timeout=60_000)
    assert (out / "predictions.csv").read_text().startswith("path,")
    assert {p.name for p in out.iterdir()} == renamed | names


def test_the_report_asks_before_replacing_its_files(qtbot, tiny_run, tmp_path, monkeypatch):
    from tl_desktop.gui.report_action import create_report
    from tl_desktop.gui.widgets import dialogs

    out = tmp_path / "report"
    out.mkdir()
    (out / "report.html").write_text(EDITED)
    dialog = create_report(None, tiny_run)
    qtbot.addWidget(dialog)
    qtbot.waitUntil(dialog.create_button.isEnabled, timeout=180_000)
    dialog.folder.setText(str(out))
    gathered = dialog.worker
    questions: list[str] = []
    # "Create anyway" for the model card's placeholders, then "No" to replacing the edited file
    monkeypatch.setattr(dialogs, "ask_yes_no", lambda parent, title, question, *a, **k: questions.append(question)
                        or question.startswith("The intended use"))
    dialog.create_button.click()
    assert len(questions) == 2 and questions[0].startswith("The intended use and limitations still say")
    assert questions[1] == f"report.html already exists in {out}."
    assert (out / "report.html").read_text() == EDITED and not (out / "report.pdf").exists()
    assert "not written" in dialog.status.text() and dialog.create_button.isEnabled()
    assert dialog.worker is gathered  # no writing task was started
    dialog.close()
    qtbot.waitUntil(lambda: not dialog.worker.running, timeout=30_000)
