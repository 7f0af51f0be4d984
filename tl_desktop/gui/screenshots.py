"""Screenshots of every page for the README, taken from the real window after a real (small) run.

    xvfb-run -a python -m tl_desktop.gui.screenshots resources/screenshots --data FOLDER

FOLDER has one sub-folder per class (or train/val/test); ``--per-class`` images of each class are
linked into a temporary folder so the run takes a minute on a laptop CPU. Without ``--data`` a small
synthetic data set is drawn. Settings go to a temporary file: the user's own are never touched.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication

from tl_desktop.gui.pages.base import Step

if TYPE_CHECKING:
    from tl_desktop.gui.main_window import MainWindow

WINDOW_SIZE = (1280, 800)
PAGES = ("data", "model", "train", "results", "export", "predict")


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Process events until ``condition()`` holds; fail clearly after ``timeout_s``."""
    end = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > end:
            raise TimeoutError(f"gave up waiting for {what} after {timeout_s:.0f} s")
        QApplication.processEvents()
        time.sleep(0.02)
    QApplication.processEvents()


def subset_folder(source: Path, per_class: int, target: Path) -> Path:
    """Copy the first ``per_class`` images of each class (from ``train/`` when present) into ``target``
    (copies, not links: the scan skips links that lead out of the data folder)."""
    from tl_desktop.engine.data.images import is_supported_file

    base = source / "train" if (source / "train").is_dir() else source
    for class_dir in sorted(p for p in base.iterdir() if p.is_dir()):
        files = sorted(f for f in class_dir.iterdir() if is_supported_file(f))[:per_class]
        (target / class_dir.name).mkdir(parents=True, exist_ok=True)
        for f in files:
            shutil.copy2(f, target / class_dir.name / f.name)
    return target


def synthetic_folder(target: Path, per_class: int) -> Path:
    """Three classes of coloured shapes, for a screenshot without any real data at hand."""
    import numpy as np
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(0)
    for index, name in enumerate(("circle", "square", "triangle")):
        (target / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            image = Image.new("RGB", (160, 160), tuple(int(v) for v in rng.integers(150, 255, 3)))
            draw = ImageDraw.Draw(image)
            x, y, r = (int(v) for v in (*rng.integers(40, 120, 2), rng.integers(20, 35)))
            colour = tuple(int(v) for v in rng.integers(0, 120, 3))
            if index == 0:
                draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)
            elif index == 1:
                draw.rectangle((x - r, y - r, x + r, y + r), fill=colour)
            else:
                draw.polygon([(x, y - r), (x - r, y + r), (x + r, y + r)], fill=colour)
            image.save(target / name / f"{name}_{i:03d}.png")
    return target


def take(window: MainWindow, name: str, out_dir: Path, detail: str = "") -> Path:
    """Save the whole window as ``NN-name.png`` (``NN-name-detail.png`` for a second view of a page)."""
    QApplication.processEvents()
    path = out_dir / f"{PAGES.index(name) + 1:02d}-{name}{f'-{detail}' if detail else ''}.png"
    if not window.grab().save(str(path)):
        raise OSError(f"could not write {path}")
    print(f"wrote {path}", flush=True)
    return path


def run(out_dir: Path, data: Path | None, per_class: int, backbone: str, epochs: int) -> list[Path]:
    """Drive the window through every page and save a screenshot of each."""
    work = Path(tempfile.mkdtemp(prefix="tl-desktop-screens-"))
    images = (subset_folder(data, per_class, work / "images") if data
              else synthetic_folder(work / "images", per_class))
    window = open_window(work, backbone)
    out_dir.mkdir(parents=True, exist_ok=True)
    shots = [*shoot_data_and_model(window, images, backbone, epochs, out_dir),
             *shoot_train_and_results(window, out_dir),
             *shoot_export_and_predict(window, images, work / "export", out_dir)]
    window.close()
    return shots


def open_window(work: Path, backbone: str) -> MainWindow:
    """The application and its window, with settings of their own in ``work``."""
    from tl_desktop.config import ModelConfig, RunConfig
    from tl_desktop.gui.app import create_application
    from tl_desktop.gui.main_window import MainWindow
    from tl_desktop.gui.stored_config import save_config

    app = create_application(sys.argv[:1])
    app.setStyle("Fusion")
    settings = QSettings(str(work / "settings.ini"), QSettings.Format.IniFormat)
    settings.setValue("folders/runs", str(work / "runs"))
    save_config(settings, RunConfig(model=ModelConfig(backbone=backbone)))
    window = MainWindow(settings)
    window.resize(*WINDOW_SIZE)
    window.show()
    return window


def shoot_data_and_model(window: MainWindow, images: Path, backbone: str, epochs: int,
                         out_dir: Path) -> list[Path]:
    """Scan ``images``, then choose ``backbone`` with quick CPU settings and time it."""
    window.data_page.open_folder(str(images))
    wait_until(lambda: window.session.scan is not None, 300, "the folder scan")
    shots = [take(window, "data", out_dir)]
    model = window.model_page
    window.go_to(Step.MODEL)
    wait_until(lambda: model._loaded, 300, "the list of models")
    model.table.select(backbone)
    model.freeze.set_value(1)
    form = model.settings_form
    form.epochs.setValue(epochs)
    form.head_epochs.setValue(max(1, epochs - 1))
    form._set_combo(form.device_box, "cpu")
    model.measure_speeds([backbone])
    wait_until(lambda: not model.busy(), 300, "the speed measurement")
    return [*shots, take(window, "model", out_dir)]


def shoot_train_and_results(window: MainWindow, out_dir: Path) -> list[Path]:
    """Train, then show the evaluation of the best model."""
    window.go_to(Step.TRAIN)
    window.train_page.start_training()
    wait_until(lambda: window.session.training, 120, "the checks and the start of training")
    wait_until(lambda: not window.session.training, 1800, "training to finish")
    plots = window.train_page.plots
    wait_until(lambda: plots.canvas is not None and not plots.rendering(), 120, "the curves")
    shots = [take(window, "train", out_dir)]
    wait_until(lambda: "val" in window.session.evaluations, 600, "the evaluation")
    window.go_to(Step.RESULTS)
    results = window.results_page
    wait_until(lambda: results.matrix_canvas is not None and not results.matrix_canvas.rendering()
               and results.matrix_canvas.render_count > 0, 120, "the confusion matrix")
    return [*shots, take(window, "results", out_dir)]


def shoot_export_and_predict(window: MainWindow, images: Path, export_to: Path, out_dir: Path) -> list[Path]:
    """Export the run to ``export_to``, then classify one of ``images``, then all of them."""
    window.go_to(Step.EXPORT)
    window.export_page.folder.set_path(str(export_to))
    window.export_page.export()
    wait_until(lambda: not window.export_page.busy(), 300, "the export")
    shots = [take(window, "export", out_dir)]
    window.go_to(Step.PREDICT)
    predict = window.predict_page
    wait_until(lambda: predict.loaded is not None, 300, "the model to load")
    first_class = sorted(p for p in images.iterdir() if p.is_dir())[0]
    predict.predict_image(sorted(first_class.iterdir())[0])
    wait_until(lambda: predict.table.rowCount() > 0 and not predict.busy(), 300, "the prediction")
    shots.append(take(window, "predict", out_dir))
    predict.predict_folder(images)
    wait_until(lambda: predict.folder_result is not None and not predict.busy()
               and not predict.folder_panel.loading_thumbnails(), 300, "the folder's answers")
    return [*shots, take(window, "predict", out_dir, "folder")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Screenshots of every page of the tl-desktop window.")
    parser.add_argument("out_dir", nargs="?", default="resources/screenshots", type=Path)
    parser.add_argument("--data", type=Path, help="image folder (one sub-folder per class)")
    parser.add_argument("--per-class", type=int, default=30, help="images per class to use (default 30)")
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args(argv)
    run(args.out_dir, args.data, args.per_class, args.backbone, args.epochs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
