"""Rough edges of the report: placeholders are announced (CLI and window), "Open report" says where the file is
when no viewer opens it, figures keep their titles and labels inside, table cells wrap between words, and the
PDF's figures are vector drawings."""

from __future__ import annotations

import os
from functools import partial

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from tl_desktop.cli import main  # noqa: E402
from tl_desktop.report import figures  # noqa: E402
from tl_desktop.report.blocks import Fig, Gallery, Section, Table  # noqa: E402
from tl_desktop.report.model_card import FILL_IN, unfinished_parts  # noqa: E402
from tl_desktop.report.pdf import render_pdf  # noqa: E402

LONG_CLASSES = ["Northern_leaf_blight_disease", "healthy", "Common rust (Puccinia sorghi)", "Gray-leaf-spot"]


def test_unfinished_parts_names_each_heading_with_a_placeholder():
    card = (f"Intended use\nSorts leaves. Users: {FILL_IN}.\n\nNot intended for\nFruit.\n\n"
            "Training data\nFrom our farm, [to be completed later].\n\nOther known limitations\n- " + FILL_IN)
    assert unfinished_parts(card) == ["Intended use", "Training data", "Other known limitations"]
    assert unfinished_parts("Intended use\nOnly for greenhouse photos of our own maize.") == []


def test_report_command_warns_about_placeholders(tiny_run, tmp_path, capsys):
    (tiny_run / "model_card.md").unlink(missing_ok=True)
    assert main(["report", str(tiny_run), "--out", str(tmp_path / "draft"), "--bootstrap", "0"]) == 0
    err = capsys.readouterr().err
    assert "warning: the intended use and limitations still say" in err
    assert "Intended use, Not intended for, Training data, Other known limitations" in err
    assert "--card FILE" in err

    card = tmp_path / "card.md"
    card.write_text("Intended use\nOnly for our greenhouse photos.", encoding="utf-8")
    assert main(["report", str(tiny_run), "--out", str(tmp_path / "done"), "--card", str(card),
                 "--bootstrap", "0"]) == 0
    assert "still say" not in capsys.readouterr().err
    (tiny_run / "model_card.md").unlink()


def _answer_boxes(monkeypatch, button_text: str) -> list[str]:
    from PySide6.QtWidgets import QMessageBox

    asked: list[str] = []

    def answer(box: QMessageBox) -> int:
        asked.append(f"{box.text()} | {box.informativeText()}")
        next(b for b in box.buttons() if b.text() == button_text).click()
        return 0

    monkeypatch.setattr(QMessageBox, "exec", answer)
    return asked


def _gathered_dialog(qtbot, run_dir, out):
    from tl_desktop.gui.report_action import create_report

    (run_dir / "model_card.md").unlink(missing_ok=True)
    dialog = create_report(None, run_dir)
    qtbot.addWidget(dialog)
    qtbot.waitUntil(dialog.create_button.isEnabled, timeout=180_000)
    dialog.folder.setText(str(out))
    return dialog


def test_window_warns_before_writing_placeholders_and_selects_the_first(qtbot, tiny_run, tmp_path, monkeypatch):
    dialog = _gathered_dialog(qtbot, tiny_run, tmp_path / "out")
    asked = _answer_boxes(monkeypatch, "Edit first")
    dialog.create_button.click()
    assert len(asked) == 1 and "Intended use, Not intended for, Training data" in asked[0]
    assert dialog.card.textCursor().selectedText() == FILL_IN
    assert not (tmp_path / "out" / "report.html").exists()
    assert "Not written yet" in dialog.status.text()

    asked = _answer_boxes(monkeypatch, "Create anyway")
    dialog.create_button.click()
    qtbot.waitUntil(dialog.open_button.isEnabled, timeout=180_000)
    assert len(asked) == 1 and (tmp_path / "out" / "report.pdf").is_file()
    dialog.close()
    qtbot.waitUntil(lambda: not dialog.worker.running, timeout=30_000)
    (tiny_run / "model_card.md").unlink()


def test_open_report_that_no_viewer_opens_shows_the_path(qtbot, tiny_run, tmp_path, monkeypatch):
    from PySide6.QtGui import QDesktopServices, QGuiApplication

    dialog = _gathered_dialog(qtbot, tiny_run, tmp_path / "out")
    dialog.card.setPlainText("Intended use\nOnly for our own greenhouse photos.")
    dialog.create_button.click()
    qtbot.waitUntil(dialog.open_button.isEnabled, timeout=180_000)
    opened: list[str] = []
    # This machine has no desktop viewer; openUrl reports failure the way Qt does when none is registered.
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: opened.append(url.toLocalFile()) and False)
    dialog.open_button.click()
    box = dialog.viewer_failed
    assert box is not None and box.isVisible()
    html_path = str(tmp_path / "out" / "report.html")
    assert opened == [html_path] and html_path in box.message.text()
    box.copy_button.click()
    assert QGuiApplication.clipboard().text() == html_path and box.isVisible()
    box.folder_button.click()
    assert opened[-1] == str(tmp_path / "out") and "could not be opened either" in box.message.text()
    box.close()
    dialog.close()
    qtbot.waitUntil(lambda: not dialog.worker.running, timeout=30_000)
    (tiny_run / "model_card.md").unlink()


def _outside(figure) -> list[str]:
    """Texts of ``figure`` that reach beyond its edges once drawn."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    renderer = canvas.get_renderer()
    box = figure.bbox
    texts = [t for ax in figure.axes for t in (ax.title, ax.xaxis.label, ax.yaxis.label,
                                                *ax.get_xticklabels(), *ax.get_yticklabels())]
    out = []
    for text in texts:
        if not text.get_text():
            continue
        extent = text.get_window_extent(renderer)
        if extent.x0 < box.x0 - 1 or extent.x1 > box.x1 + 1 or extent.y0 < box.y0 - 1 or extent.y1 > box.y1 + 1:
            out.append(text.get_text())
    return out


@pytest.mark.parametrize("classes", [["a", "b"], ["blight", "healthy", "rust"], LONG_CLASSES,
                                     [f"class number {i}" for i in range(12)]])
@pytest.mark.parametrize("normalize", [False, True])
def test_confusion_matrix_keeps_title_colour_bar_and_names_inside(classes, normalize):
    k = len(classes)
    confusion = np.arange(k * k).reshape(k, k) % 7
    assert _outside(figures.confusion_matrix_figure(confusion, classes, normalize=normalize)) == []


@pytest.mark.filterwarnings("ignore:constrained_layout not applied")
def test_the_inside_check_sees_a_clipped_label():
    # Squeezed into a small fixed size, the long names do not fit: the check must say so.
    squeezed = figures.confusion_matrix_figure(np.eye(4), LONG_CLASSES, normalize=True, figsize=(2.5, 2.0))
    assert _outside(squeezed)


def test_finetune_label_stays_inside_the_loss_axes():
    history = [{"epoch": e, "train_loss": 1 / e, "val_loss": 1.2 / e, "train_accuracy": 0.5, "val_accuracy": 0.5,
                "phase": "head" if e < 5 else "finetune"} for e in range(1, 6)]
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = figures.training_curves_figure(history)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    ax = fig.axes[0]
    label = next(t for t in ax.texts if t.get_text() == figures.FINETUNE_LABEL)
    inside = ax.get_window_extent()
    extent = label.get_window_extent(canvas.get_renderer())
    assert inside.x0 <= extent.x0 and extent.x1 <= inside.x1


def test_words_are_kept_whole_in_ticks_and_table_cells():
    assert figures.class_tick_label("Northern_leaf_blight_disease") == "Northern_leaf_\nblight_disease"
    assert figures.wrap_words("Common rust (Puccinia sorghi)", 14) == ["Common rust", "(Puccinia", "sorghi)"]
    # A single word longer than a cell that cannot grow is cut with a hyphen, never silently.
    assert figures.wrap_words("Pseudomonas", 6, split_words=True) == ["Pseud-", "omonas"]


def _pdf_images(blocks, tmp_path) -> int:
    path = tmp_path / "one.pdf"
    render_pdf(path, "Title", "Subtitle", [Section("s", "Section", "summary", blocks)])
    return path.read_bytes().count(b"/Subtype /Image")


def test_pdf_figures_are_vector_and_tables_wrap_between_words(tmp_path):
    from PIL import Image

    from tl_desktop.report.data import MistakeImage

    confusion = partial(figures.confusion_matrix_figure, np.eye(4) * 3, LONG_CLASSES, normalize=True)
    table = Table(["Class", "Images"], [[name, "3"] for name in LONG_CLASSES])
    assert _pdf_images([Fig(confusion, "caption"), table], tmp_path) == 0
    picture = Image.new("RGB", (32, 32), "red")
    mistake = MistakeImage("Test split", "a.png", "healthy", "rust", 0.9, picture, picture)
    assert _pdf_images([Gallery([mistake])], tmp_path) == 2  # the photos stay pictures: the count sees them


def test_live_plot_keeps_its_labels_inside_a_small_canvas(qtbot, tmp_path):
    from tl_desktop.gui.widgets.live_plots import LivePlots

    plots = LivePlots()
    qtbot.addWidget(plots)
    plots.resize(560, 240)
    plots.show()
    for epoch in range(1, 6):
        plots.add_epoch(epoch, 0.0001234 / epoch, 0.0002 / epoch, 0.5, 0.6, epoch == 5)
    plots.mark_finetune(5)  # fine-tuning starts at the last epoch: the label sits next to the right edge
    plots.flush()
    qtbot.waitUntil(lambda: plots.canvas is not None and not plots.rendering(), timeout=30_000)
    plots.flush()
    qtbot.waitUntil(lambda: not plots.rendering(), timeout=30_000)
    figure = plots.canvas.figure
    renderer = figure.canvas.get_renderer()
    loss_ax = figure.axes[0]
    box = figure.bbox
    for text in (loss_ax.yaxis.label, loss_ax.xaxis.label, loss_ax.title, *loss_ax.get_yticklabels()):
        extent = text.get_window_extent(renderer)
        assert box.x0 - 1 <= extent.x0 and extent.x1 <= box.x1 + 1 and box.y0 - 1 <= extent.y0, text.get_text()
    label = next(t for t in loss_ax.texts if t.get_text())
    extent, inside = label.get_window_extent(renderer), loss_ax.get_window_extent(renderer)
    assert inside.x0 <= extent.x0 and extent.x1 <= inside.x1


def test_backbones_are_named_by_their_title_where_a_user_reads_them(qtbot):
    from tl_desktop.engine.models.backbones import backbone_title, list_backbones
    from tl_desktop.gui.widgets.backbone_table import BackboneTable

    assert backbone_title("resnet18") == "ResNet-18" and backbone_title("not_a_backbone") == "not_a_backbone"
    table = BackboneTable()
    qtbot.addWidget(table)
    table.set_backbones(list_backbones(), {}, {}, "resnet18")
    assert table.title_of("resnet18") == "ResNet-18" and table.title_of("efficientnet_lite0") == "EfficientNet-Lite0"

