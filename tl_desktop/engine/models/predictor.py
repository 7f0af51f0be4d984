"""What every prediction engine offers (torch's :class:`~tl_desktop.engine.models.bundle.LoadedModel`,
onnxruntime's ``OnnxModel``): classes, metadata, the stored preprocessing, probabilities for a batch of
model input, and the one pipeline that turns image files into probabilities."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tl_desktop.engine.data.preprocess import Preprocessing
from tl_desktop.engine.runtime.allocator import heavy_work

if TYPE_CHECKING:
    import torch

    from tl_desktop.engine.runtime.stop import StopToken


@dataclass
class PredictionResult:
    """Class probabilities for the readable files (rows follow ``paths``) and the skipped ones."""

    paths: list[str]
    probs: np.ndarray
    failures: list[tuple[str, str]]


class Predictor(ABC):
    """A model ready to predict; subclasses say how a batch of model input becomes probabilities."""

    engine = ""  # "torch" or "onnxruntime": which library runs the network

    def __init__(self, meta: Any, path: Path | None = None) -> None:
        # meta is the model file's BundleMeta (not imported here: bundle.py builds on this module)
        self.meta = meta
        self.path = path
        self.classes: list[str] = list(meta.classes)
        self.preprocessing = Preprocessing.from_dict(meta.preprocessing)

    @abstractmethod
    def predict_batch(self, x: torch.Tensor) -> np.ndarray:
        """Class probabilities (rows sum to 1) for a batch of preprocessed images, temperature applied."""

    def predict_paths(
        self,
        paths: Sequence[str | Path],
        batch_size: int = 32,
        progress: Callable[[int, int], None] | None = None,
        stop: StopToken | None = None,
    ) -> PredictionResult:
        """Predict image files through the stored preprocessing; unreadable ones go to ``failures`` as
        (path, reason)."""
        from tl_desktop.engine.data.model_input import input_batches

        done_paths: list[str] = []
        rows: list[np.ndarray] = []
        failures: list[tuple[str, str]] = []
        total = len(paths)
        with heavy_work():
            for ok_paths, batch, failed in input_batches([str(p) for p in paths], self.preprocessing, batch_size,
                                                         stop):
                failures.extend(failed)
                if batch is not None:
                    rows.append(self.predict_batch(batch))
                    done_paths.extend(ok_paths)
                if progress is not None:
                    progress(len(done_paths) + len(failures), total)
        probs = np.concatenate(rows) if rows else np.zeros((0, len(self.classes)), dtype=np.float32)
        return PredictionResult(paths=done_paths, probs=probs, failures=failures)
