"""Export a model to ONNX, checked: the workflow behind ``tl-desktop export --format onnx`` and the Export
page's "ONNX" choice.

The network is exported (dynamic batch, ``logits`` and ``probabilities``, the metadata an outside program
needs), then onnxruntime predicts up to 64 of the run's validation images (or images of a folder the user
names) through the app's own preprocessing and must agree with the app (see :mod:`deploy.parity`). Only an
export that passes is written, with its figures in ``<name>.parity.json`` next to it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tl_desktop.engine.caching.onnx_models import store_conversion
from tl_desktop.engine.caching.store import CacheError
from tl_desktop.engine.deploy import ONNX_SUFFIX
from tl_desktop.engine.deploy.export import onnx_bytes
from tl_desktop.engine.deploy.parity import (
    MAX_PARITY_IMAGES,
    ParityReport,
    check_parity,
)
from tl_desktop.engine.deploy.runner import onnx_model
from tl_desktop.engine.models.bundle import load_bundle
from tl_desktop.engine.runtime.stop import StopToken
from tl_desktop.engine.training.runfolder import RunFolder, model_file_of
from tl_desktop.fileio import atomic_write_bytes, atomic_write_text, refuse_to_replace

PARITY_SUFFIX = ".parity.json"


class OnnxExportRefused(Exception):
    """The export cannot be made or did not pass its check; nothing was written; the message says why."""


@dataclass(frozen=True)
class OnnxExport:
    """A written export: the ONNX file, its parity figures and where they were written, and the seconds taken."""

    path: Path
    parity_path: Path
    parity: ParityReport
    seconds: float

    def message(self) -> str:
        return f"Wrote {self.path} ({self.path.stat().st_size / 1e6:.1f} MB): {self.parity.summary()}"


def parity_path_of(out: Path) -> Path:
    """Where an export's parity figures go: ``model.onnx`` -> ``model.parity.json``."""
    return out.with_name(out.stem + PARITY_SUFFIX)


def parity_images(model_file: Path, folder: str | Path | None = None) -> tuple[list[str], str]:
    """Up to 64 images for the check, spread evenly: of ``folder``, else the run's validation (or test)
    split; and a phrase naming them."""
    from tl_desktop.engine.data.dataset import DataError, list_images

    if folder is not None:
        try:
            paths = list_images(folder)
        except DataError as exc:
            raise OnnxExportRefused(str(exc)) from None
        source = f"images of {folder}"
    else:
        run = RunFolder.containing(model_file)
        if run is None:
            raise OnnxExportRefused(f"{model_file} is not in a run folder, so it has no validation images for "
                                    "the parity check; name a folder of images to check it on")
        split = run.scan().split
        samples, which = (split.val, "validation") if split.val else (split.test, "test")
        paths, source = [s.path for s in samples], f"{which} images of run {run.name}"
    if not paths:
        raise OnnxExportRefused(f"there are no {source} to check the export on")
    step = max(1, -(-len(paths) // MAX_PARITY_IMAGES))
    return paths[::step][:MAX_PARITY_IMAGES], source


def export_onnx(model: str | Path, out: str | Path | None = None, force: bool = False,
                images: str | Path | None = None, note: Callable[[str], None] | None = None,
                stop: StopToken | None = None) -> OnnxExport:
    """Export a model file (or a run's model) to ``out`` (default: next to the model file, ``.onnx``),
    checked against the app on real images; refuse, writing nothing, when the check fails."""
    started = time.perf_counter()
    model_file = model_file_of(model, note=note)
    target = Path(out).expanduser() if out is not None else model_file.with_suffix(ONNX_SUFFIX)
    if target.suffix != ONNX_SUFFIX:
        raise OnnxExportRefused(f"{target} must end in {ONNX_SUFFIX}")
    refuse_to_replace([target, parity_path_of(target)], force)
    loaded = load_bundle(model_file)
    paths, source = parity_images(model_file, images)
    model_bytes = onnx_bytes(loaded)
    parity = check_parity(loaded, onnx_model(model_bytes, loaded.meta), paths, source, stop=stop)
    if not parity.passed:
        raise OnnxExportRefused(f"the ONNX export of {model_file.name} was not written: {parity.summary()}")
    atomic_write_bytes(target, model_bytes)
    payload = {"model": str(model_file.resolve()), "onnx": str(target.resolve()), **parity.to_dict()}
    atomic_write_text(parity_path_of(target), json.dumps(payload, indent=2))
    try:
        store_conversion(model_file, model_bytes)  # the app's own predictions can use it right away
    except CacheError:
        pass  # a cache it cannot write only costs a later conversion
    return OnnxExport(target, parity_path_of(target), parity, time.perf_counter() - started)
