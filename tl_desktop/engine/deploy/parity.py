"""Parity is checked, not assumed: an export runs through onnxruntime on real images, through the app's
own preprocessing, at two batch sizes, and must give torch's top-1 for every image and probabilities
within ``PROBABILITY_TOLERANCE``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from tl_desktop.engine.models.predictor import Predictor
from tl_desktop.engine.runtime.stop import StopToken

PROBABILITY_TOLERANCE = 1e-4
MAX_PARITY_IMAGES = 64
BATCH_SIZES = (32, 5)  # a full batch and an odd one: the batch dimension really is dynamic


@dataclass(frozen=True)
class ParityReport:
    """How an export's answers compare with the app's on ``images`` images from ``source``."""

    source: str
    images: int
    same_top1: int
    max_probability_difference: float
    unreadable: int
    batch_sizes: tuple[int, ...] = BATCH_SIZES
    tolerance: float = PROBABILITY_TOLERANCE

    @property
    def passed(self) -> bool:
        return self.images > 0 and self.same_top1 == self.images and self.max_probability_difference <= self.tolerance

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}

    def summary(self) -> str:
        """One line for the user: what was compared and how close it came."""
        if not self.images:
            return f"no image of {self.source} could be read, so the export could not be checked"
        verdict = "passed" if self.passed else "FAILED"
        return (f"parity check {verdict} on {self.images} {self.source}: same top class for {self.same_top1} of "
                f"{self.images}, largest probability difference {self.max_probability_difference:.1e} "
                f"(allowed {self.tolerance:.0e})")


def check_parity(reference: Predictor, candidate: Predictor, paths: Sequence[str], source: str,
                 stop: StopToken | None = None) -> ParityReport:
    """Compare ``candidate``'s predictions of ``paths`` (up to ``MAX_PARITY_IMAGES``) with ``reference``'s."""
    paths = [str(p) for p in paths[:MAX_PARITY_IMAGES]]
    expected = reference.predict_paths(paths, batch_size=BATCH_SIZES[0], stop=stop)
    same, worst = len(expected.paths), 0.0
    for batch_size in BATCH_SIZES:
        got = candidate.predict_paths(expected.paths, batch_size=batch_size, stop=stop)
        if got.paths != expected.paths:  # an image that decoded once but not twice: nothing can be trusted
            return ParityReport(source, len(expected.paths), 0, 1.0, len(expected.failures))
        if len(got.paths):
            same = min(same, int((got.probs.argmax(1) == expected.probs.argmax(1)).sum()))
            worst = max(worst, float(np.abs(got.probs.astype(np.float64) - expected.probs).max()))
    return ParityReport(source, len(expected.paths), same, worst, len(expected.failures))
