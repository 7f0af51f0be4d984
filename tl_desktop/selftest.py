"""``tl-desktop --self-test``: a headless end-to-end check a support person can ask a user to run.

It makes a small image set in a temporary folder, trains one short run with the bundled backbone
(offline: downloads are refused), evaluates it, checks the exported model file, predicts with that
file and compares the result with the trained model still in memory, then exports the model to ONNX with
the same workflow as the window and ``tl-desktop export --format onnx``, whose parity check must pass
(onnxruntime gives the app's answers). Each step prints what it did
and how long it took; the first failure stops the test with its reason and a non-zero exit status.
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from tl_desktop.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from tl_desktop.engine.training.callbacks import Callback
from tl_desktop.engine.training.events import Event, FitEnded

if TYPE_CHECKING:
    import PIL.Image
    import torch

    from tl_desktop.engine.data.dataset import ScanResult
    from tl_desktop.engine.evaluation.evaluate import Predictions
    from tl_desktop.engine.models.bundle import LoadedModel
    from tl_desktop.engine.training.trainer import FitResult

BACKBONE = "efficientnet_lite0"
CLASSES = ("disc", "stripes", "checks")
IMAGES_PER_CLASS = 8
IMAGE_SIZE = 64
VAL_FRACTION = TEST_FRACTION = 0.25
PROB_TOLERANCE = 1e-4


class SelfTestFailure(Exception):
    """A check failed; the message is the reason shown to the user."""


@dataclass
class SelfTestState:
    """What the steps hand to each other."""

    workdir: Path
    data_dir: Path = field(init=False)
    runs_dir: Path = field(init=False)
    scan: ScanResult | None = None
    fit: FitResult | None = None
    predictions: Predictions | None = None
    model: torch.nn.Module | None = None
    loaded: LoadedModel | None = None

    def __post_init__(self) -> None:
        self.data_dir = self.workdir / "images"
        self.runs_dir = self.workdir / "runs"


def _environment(state: SelfTestState) -> str:
    """Import the numeric stack (torchvision's compiled ops register on import) and report versions."""
    from importlib.metadata import version

    import onnx
    import PIL
    import timm
    import torch
    import torchvision

    from tl_desktop import __version__
    from tl_desktop.resources import is_frozen

    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 10.0, 10.0]])
    torchvision.ops.nms(boxes, torch.tensor([0.9, 0.8]), 0.5)
    return (
        f"tl-desktop {__version__} ({'frozen bundle' if is_frozen() else 'from source'}), "
        f"Python {platform.python_version()} on {platform.system()} {platform.machine()}, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), torchvision "
        f"{torchvision.__version__}, timm {timm.__version__}, Pillow {PIL.__version__}, onnx {onnx.__version__}, "
        f"onnxruntime {version('onnxruntime')}"  # not imported here: the ONNX step loads it as the app does
    )


def draw_pattern(kind: str, index: int, size: int) -> PIL.Image.Image:
    """One synthetic image of a class: the pattern is the class, colour and position vary."""
    from PIL import Image, ImageDraw

    shade = 60 + (index * 37) % 140
    image = Image.new("RGB", (size, size), (shade, 255 - shade, (index * 53) % 256))
    draw = ImageDraw.Draw(image)
    step = 8 + index % 4
    if kind == "disc":
        r, c = size // 3, size // 2 + (index % 5) - 2
        draw.ellipse((c - r, c - r, c + r, c + r), fill=(250, 250, 250))
    elif kind == "stripes":
        for x in range(index % step, size, step):
            draw.line((x, 0, x, size), fill=(10, 10, 10), width=3)
    else:
        for y in range(0, size, step):
            for x in range((y // step) % 2 * step, size, 2 * step):
                draw.rectangle((x, y, x + step - 1, y + step - 1), fill=(0, 0, 0))
    return image


def _make_images(state: SelfTestState) -> str:
    """Write a small labelled image set, one sub-folder per class."""
    for kind in CLASSES:
        folder = state.data_dir / kind
        folder.mkdir(parents=True)
        for i in range(IMAGES_PER_CLASS):
            draw_pattern(kind, i, IMAGE_SIZE).save(folder / f"{kind}_{i:02d}.png")
    total = len(CLASSES) * IMAGES_PER_CLASS
    return f"{total} images, {len(CLASSES)} classes, {IMAGE_SIZE}x{IMAGE_SIZE} px in {state.data_dir}"


def _bundled_backbone(state: SelfTestState) -> str:
    """The default backbone's weights must ship with the application: no download, no cache."""
    from tl_desktop.engine.models.backbones import get_backbone_spec
    from tl_desktop.engine.models.weights import resolve_weights, weights_status

    spec = get_backbone_spec(BACKBONE)
    status = weights_status(spec)
    if status != "bundled":
        raise SelfTestFailure(
            f"the weights of {spec.title} should ship with the application but their status is "
            f"{status!r}; reinstall tl-desktop (the file {spec.weights_filename} is missing)"
        )
    path = resolve_weights(spec, allow_download=False)
    return f"{spec.title}: weights bundled ({path.stat().st_size / 1e6:.1f} MB at {path})"


def _data_config(state: SelfTestState) -> DataConfig:
    """The synthetic image set, split in half for training and a quarter each to validate and test."""
    return DataConfig(root=str(state.data_dir), val_fraction=VAL_FRACTION, test_fraction=TEST_FRACTION)


def _scan(state: SelfTestState) -> str:
    """Scan and split the image set exactly as a user's folder would be."""
    from tl_desktop.engine.data.dataset import scan_dataset

    state.scan = scan_dataset(_data_config(state))
    split = state.scan.split
    if split.classes != sorted(CLASSES):
        raise SelfTestFailure(f"scan found classes {split.classes}, expected {sorted(CLASSES)}")
    return f"train {len(split.train)}, validation {len(split.val)}, test {len(split.test)} images"


class _FitEndRecorder(Callback):
    """Keeps the run's last event, whose ``error`` explains a failed run."""

    def __init__(self) -> None:
        self.fit_ended: FitEnded | None = None

    def on_event(self, event: Event) -> None:
        if isinstance(event, FitEnded):
            self.fit_ended = event


def _train(state: SelfTestState) -> str:
    """One short epoch training the head and the last backbone block (backpropagation through the
    backbone, frozen-block handling and checkpointing all run), on the CPU."""
    from tl_desktop.engine.training.trainer import Trainer

    config = RunConfig(
        data=_data_config(state),
        model=ModelConfig(backbone=BACKBONE, trainable_blocks=1),
        train=TrainConfig(epochs=1, head_epochs=0, batch_size=8, cached_views=1, augmentation="light",
                          early_stopping_patience=0, device="cpu", num_workers=0),
        out_dir=str(state.runs_dir),
    ).validate()
    recorder = _FitEndRecorder()
    trainer = Trainer(config, scan=state.scan, callbacks=[recorder])
    state.fit = trainer.fit()
    state.model = trainer.model
    if state.fit.status != "completed":
        error = recorder.fit_ended.error if recorder.fit_ended else "the trainer emitted no FitEnded event"
        raise SelfTestFailure(f"training ended with status {state.fit.status!r}: {error}")
    if state.fit.model_path is None or not Path(state.fit.model_path).is_file():
        raise SelfTestFailure(f"training completed but wrote no model file in {state.fit.run_dir}")
    last = state.fit.history[-1]
    return (f"{len(state.fit.history)} epoch, validation accuracy {state.fit.best_val_accuracy:.2f} "
            f"(last train loss {last.train_loss:.3f}), run folder {state.fit.run_dir}")


def _evaluate(state: SelfTestState) -> str:
    """Evaluate the run on its test split with the same code the window and the CLI use."""
    import numpy as np

    from tl_desktop.engine.evaluation.evaluate import evaluate_run

    predictions, metrics = evaluate_run(state.fit.run_dir, split="test")
    expected = len(state.scan.split.test)
    if len(predictions.paths) != expected:
        raise SelfTestFailure(f"evaluation predicted {len(predictions.paths)} of {expected} test images")
    if not np.allclose(predictions.probs.sum(axis=1), 1.0, atol=PROB_TOLERANCE):
        raise SelfTestFailure("evaluation probabilities do not sum to 1")
    state.predictions = predictions
    accuracy = metrics.to_dict()["accuracy"]
    return f"{expected} test images, accuracy {accuracy:.2f} (one epoch on synthetic images)"


def _model_file(state: SelfTestState) -> str:
    """The exported model file loads safely and carries the classes and the preprocessing."""
    from tl_desktop.engine.models.backbones import get_backbone_spec
    from tl_desktop.engine.models.bundle import load_bundle

    path = Path(state.fit.model_path)
    state.loaded = loaded = load_bundle(path)
    if list(loaded.classes) != state.scan.split.classes:
        raise SelfTestFailure(f"model file classes {loaded.classes} differ from {state.scan.split.classes}")
    if loaded.preprocessing != get_backbone_spec(BACKBONE).preprocessing:
        raise SelfTestFailure(f"model file preprocessing {loaded.preprocessing} is not the backbone's")
    return f"{path.name}, {path.stat().st_size / 1e6:.1f} MB, backbone {loaded.meta.backbone}"


def _predict(state: SelfTestState) -> str:
    """Predict with the model file; compare with the trained model still in memory."""
    import numpy as np
    import torch

    from tl_desktop.engine.data.preprocess import load_for_model

    loaded = state.loaded
    paths = [sample.path for sample in state.scan.split.test]
    result = loaded.predict_paths(paths, batch_size=4)
    if result.failures:
        raise SelfTestFailure(f"prediction failed for {result.failures[0][0]}: {result.failures[0][1]}")
    model = state.model.eval().cpu()
    with torch.inference_mode():
        batch = torch.stack([loaded.transform(load_for_model(p, loaded.preprocessing)) for p in paths])
        expected = torch.softmax(model(batch) / loaded.meta.temperature, dim=1).numpy()
    difference = float(np.abs(result.probs - expected).max())
    if difference > PROB_TOLERANCE:
        raise SelfTestFailure(f"model file and in-memory model disagree: max probability difference {difference:.2e}")
    if not np.allclose(result.probs, state.predictions.probs, atol=PROB_TOLERANCE):
        raise SelfTestFailure("prediction from the model file differs from the evaluation's")
    return f"{len(paths)} images; the model file matches the in-memory model (max difference {difference:.1e})"


def _onnx_export(state: SelfTestState) -> str:
    """Export the model file to ONNX in the temporary folder; onnxruntime must give the app's answers on the
    run's validation images (the parity check), or nothing is written and the step fails."""
    from tl_desktop.engine.deploy.export import OnnxExportError
    from tl_desktop.engine.workflows.onnx_export import OnnxExportRefused, export_onnx

    try:
        done = export_onnx(state.fit.model_path, state.workdir / "export" / "model.onnx")
    except (OnnxExportRefused, OnnxExportError) as exc:
        raise SelfTestFailure(str(exc)) from None
    return (f"{done.path.name}, {done.path.stat().st_size / 1e6:.1f} MB in {done.seconds:.1f} s; "
            f"{done.parity.summary()}")


STEPS: tuple[tuple[str, Callable[[SelfTestState], str]], ...] = (
    ("environment", _environment),
    ("make images", _make_images),
    ("bundled backbone", _bundled_backbone),
    ("scan", _scan),
    ("train", _train),
    ("evaluate", _evaluate),
    ("model file", _model_file),
    ("predict", _predict),
    ("ONNX export", _onnx_export),
)


def run_self_test(out: TextIO | None = None) -> int:
    """Run every step in a temporary folder; 0 when all pass, 1 at the first failure."""
    out = out or sys.stdout
    started = time.perf_counter()
    previous_cache = os.environ.get("TL_DESKTOP_CACHE_DIR")
    print("tl-desktop self-test: train, evaluate, export, predict and export to ONNX on a small synthetic "
          "image set", file=out)
    with tempfile.TemporaryDirectory(prefix="tl-desktop-selftest-") as tmp:
        # An empty weights cache: the default backbone must come from the application itself.
        os.environ["TL_DESKTOP_CACHE_DIR"] = str(Path(tmp) / "cache")
        try:
            failed = _run_steps(SelfTestState(Path(tmp)), out)
        finally:
            if previous_cache is None:
                os.environ.pop("TL_DESKTOP_CACHE_DIR", None)
            else:
                os.environ["TL_DESKTOP_CACHE_DIR"] = previous_cache
    total = time.perf_counter() - started
    if failed:
        print(f"self-test FAILED at step '{failed}' after {total:.1f} s", file=out)
        return 1
    print(f"self-test passed: {len(STEPS)} steps in {total:.1f} s", file=out)
    return 0


def _run_steps(state: SelfTestState, out: TextIO) -> str | None:
    """Run the steps in order; return the name of the step that failed, or None."""
    for name, step in STEPS:
        started = time.perf_counter()
        try:
            detail = step(state)
        except Exception as exc:  # noqa: BLE001 - any failure is reported with its reason
            seconds = time.perf_counter() - started
            reason = str(exc) if isinstance(exc, SelfTestFailure) else f"{type(exc).__name__}: {exc}"
            print(f"[FAIL] {name:<17} {seconds:7.2f} s  {reason}", file=out)
            if not isinstance(exc, SelfTestFailure):
                traceback.print_exc(file=out)
            out.flush()
            return name
        print(f"[ok]   {name:<17} {time.perf_counter() - started:7.2f} s  {detail}", file=out)
        out.flush()
    return None
