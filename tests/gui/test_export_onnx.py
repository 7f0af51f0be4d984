"""The Export page's ONNX choice: a Save-as dialog with a free name, replacing only when the user agrees,
the engine's export and parity check in the background, the result in words, and refusals in a dialog."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tl_desktop.config import DataConfig, ModelConfig, RunConfig, TrainConfig


@pytest.fixture
def tiny_run(window, make_image_folder, tmp_path) -> Path:
    """A completed tiny-CNN run, opened as the window's current run, with the Export page shown."""
    from tl_desktop.engine.training.trainer import Trainer

    root = make_image_folder(tmp_path, {"a": 8, "b": 8}, size=40)
    config = RunConfig(
        data=DataConfig(root=str(root), val_fraction=0.25, test_fraction=0.25), out_dir=str(tmp_path / "runs"),
        model=ModelConfig(backbone="tiny_cnn", trainable_blocks=1),
        train=TrainConfig(epochs=1, head_epochs=1, batch_size=4, augmentation="none", cached_views=1,
                          early_stopping_patience=0, device="cpu"),
    )
    result = Trainer(config).fit()
    assert result.status == "completed", result
    window.session.set_run(result.run_dir, result)
    window.go_to(4)
    return result.run_dir


def _save_as(monkeypatch, answer: Path | None) -> list[str]:
    """The Save-as dialog answers ``answer`` (None: the user cancelled); returns the names it proposed."""
    from PySide6.QtWidgets import QFileDialog

    proposed: list[str] = []

    def dialog(parent, caption, start, file_filter, *args, **kwargs):
        proposed.append(start)
        return (str(answer) if answer is not None else "", file_filter)

    monkeypatch.setattr(QFileDialog, "getSaveFileName", dialog)
    return proposed


def _export(qtbot, page) -> None:
    assert page.onnx_button.isEnabled()
    page.onnx_button.click()
    qtbot.waitUntil(lambda: not page.busy("onnx"), timeout=120000)


def test_onnx_export_writes_the_checked_file_and_says_how_it_compared(qtbot, window, tiny_run, tmp_path,
                                                                      monkeypatch, dialogs_shown):
    page = window.export_page
    out = tmp_path / "exported"
    out.mkdir()
    page.folder.set_path(str(out))
    target = out / f"{tiny_run.name}.onnx"
    proposed = _save_as(monkeypatch, target)
    _export(qtbot, page)
    assert proposed == [str(target)]
    assert not dialogs_shown, dialogs_shown
    parity = json.loads((out / f"{tiny_run.name}.parity.json").read_text())
    assert parity["passed"] and parity["images"] == parity["same_top1"] > 0
    text = page.onnx_result.text()
    assert f"Exported <b>{target.name}</b>" in text
    assert (f"parity check passed on {parity['images']} validation images of run {tiny_run.name}: same top class "
            f"for {parity['images']} of {parity['images']}") in text
    assert f"{tiny_run.name}.parity.json" in text
    assert page.onnx_button.isEnabled() and not page.onnx_progress.isVisible() and not page.onnx_cancel.isVisible()

    import onnxruntime

    assert onnxruntime.InferenceSession(str(target)).get_outputs()[1].name == "probabilities"

    # Next time the dialog proposes a name that replaces nothing.
    proposed = _save_as(monkeypatch, None)
    page.onnx_button.click()
    assert proposed == [str(out / f"{tiny_run.name}-2.onnx")]
    assert not page.busy("onnx")


def test_replacing_an_export_is_asked_first(qtbot, window, tiny_run, tmp_path, monkeypatch, dialogs_shown):
    from tl_desktop.gui.widgets import dialogs

    page = window.export_page
    target = tmp_path / "model.onnx"
    target.write_bytes(b"old")
    _save_as(monkeypatch, tmp_path / "model")  # typed without the suffix
    page.onnx_button.click()  # the recorded question box answers "Cancel"
    assert not page.busy("onnx") and target.read_bytes() == b"old"
    assert dialogs_shown and "model.onnx already exists" in dialogs_shown[-1]

    questions: list[str] = []
    monkeypatch.setattr(dialogs, "ask_yes_no", lambda parent, title, question, *a, **k: questions.append(question)
                        or True)
    _export(qtbot, page)
    assert questions and "model.onnx already exists" in questions[0]
    assert target.read_bytes() != b"old" and (tmp_path / "model.parity.json").is_file()
    assert "Exported <b>model.onnx</b>" in page.onnx_result.text()


def test_a_refused_export_is_shown_in_a_dialog_and_writes_nothing(qtbot, window, tiny_run, tmp_path,
                                                                   monkeypatch, dialogs_shown):
    from tl_desktop.engine.workflows import onnx_export

    reason = "parity check FAILED on 4 validation images: same top class for 3 of 4"

    def refuse(*args, **kwargs):
        raise onnx_export.OnnxExportRefused(f"the ONNX export of model.tlmodel was not written: {reason}")

    monkeypatch.setattr(onnx_export, "export_onnx", refuse)
    page = window.export_page
    target = tmp_path / "refused.onnx"
    _save_as(monkeypatch, target)
    _export(qtbot, page)
    assert len(dialogs_shown) == 1
    text, next_step, details = dialogs_shown[0].split(" | ")
    assert text.startswith("The model was not exported to ONNX.") and reason in text
    assert "Predict page" in next_step
    assert not details  # a refusal is an answer, not a crash: no traceback
    assert not target.exists() and not (tmp_path / "refused.parity.json").exists()
    assert page.onnx_result.text() == "No ONNX file was written."
    assert page.onnx_button.isEnabled()


def test_cancel_stops_the_export_and_says_nothing_was_written(qtbot, window, tiny_run, tmp_path, monkeypatch,
                                                              dialogs_shown):
    import threading

    from tl_desktop.engine.workflows import onnx_export

    checking = threading.Event()

    def wait_for_stop(*args, stop, **kwargs):  # the parity check ends at its next batch once asked to stop
        checking.set()
        while True:
            stop.raise_if_requested()
            threading.Event().wait(0.01)

    monkeypatch.setattr(onnx_export, "export_onnx", wait_for_stop)
    page = window.export_page
    _save_as(monkeypatch, tmp_path / "stopped.onnx")
    page.onnx_button.click()
    assert page.busy("onnx") and not page.onnx_button.isEnabled()
    assert page.onnx_progress.isVisibleTo(page) and page.onnx_cancel.isVisibleTo(page)
    qtbot.waitUntil(checking.is_set, timeout=10000)
    page.onnx_cancel.click()
    qtbot.waitUntil(lambda: not page.busy("onnx"), timeout=10000)
    assert page.onnx_result.text() == "Stopped; no ONNX file was written."
    assert not dialogs_shown and not (tmp_path / "stopped.onnx").exists()
    assert page.onnx_button.isEnabled() and not page.onnx_cancel.isVisibleTo(page)


def test_a_file_that_cannot_be_written_is_reported_with_the_next_step(qtbot, window, tiny_run, tmp_path,
                                                                      monkeypatch, dialogs_shown):
    from tl_desktop.engine.workflows import onnx_export
    from tl_desktop.fileio import DiskWriteError

    def full_disk(*args, **kwargs):
        raise DiskWriteError(28, "could not write /media/stick/model.onnx: No space left on device")

    monkeypatch.setattr(onnx_export, "export_onnx", full_disk)
    page = window.export_page
    _save_as(monkeypatch, tmp_path / "model.onnx")
    _export(qtbot, page)
    assert len(dialogs_shown) == 1
    text, next_step, _details = dialogs_shown[0].split(" | ")
    assert "No space left on device" in text and "enough free space" in next_step
    assert page.onnx_result.text() == ("No ONNX file was written: could not write /media/stick/model.onnx: "
                                       "No space left on device")
