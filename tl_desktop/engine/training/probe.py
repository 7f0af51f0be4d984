"""The linear probe: the head fitted to convergence on the frozen part's pooled features.

An L2-regularised multinomial logistic regression (scikit-learn, L-BFGS) on the training images'
features, standardised (which makes L-BFGS converge ~5x sooner here; the scaling is folded back into the
weights), its strength chosen on the validation images (highest accuracy, then lowest log loss). It is
the head that fine-tuning starts from (LP-FT: Kumar et al., "Fine-Tuning can Distort Pretrained Features
and Underperform Out-of-Distribution", ICLR 2022) and the baseline a run must not end below.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

STRENGTHS = tuple(float(c) for c in np.logspace(-4, 2, 13))  # inverse L2 strengths (scikit-learn's C) tried
ABSENT_CLASS_BIAS = -30.0  # a class without training images: never the answer, probability ~0
MAX_ITERATIONS = 3000


@dataclass(frozen=True)
class Probe:
    """The fitted head: ``weight`` (classes × features) and ``bias`` as an ``nn.Linear`` holds them."""

    weight: np.ndarray
    bias: np.ndarray
    strength: float
    val_accuracy: float
    val_loss: float

    def logits(self, features: np.ndarray) -> np.ndarray:
        return features @ self.weight.T + self.bias

    def scaled(self, factor: float) -> Probe:
        """The same answers with logits ``factor`` times as large (a temperature of 1 / ``factor``)."""
        return replace(self, weight=(self.weight * factor).astype(np.float32),
                       bias=(self.bias * factor).astype(np.float32))

    def load_into(self, linear: nn.Linear) -> None:
        """Make ``linear`` this probe (same device and dtype as before)."""
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(self.weight).to(linear.weight))
            linear.bias.copy_(torch.from_numpy(self.bias).to(linear.bias))


def _as_linear(model: object, classes: np.ndarray, num_classes: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's coefficients as a full softmax layer over ``num_classes`` (absent classes ruled out)."""
    coef, intercept = model.coef_, model.intercept_  # type: ignore[attr-defined]
    if len(classes) == 2 and coef.shape[0] == 1:  # a binary fit: p(second) = sigmoid(z), i.e. logits (0, z)
        coef = np.vstack([np.zeros_like(coef), coef])
        intercept = np.array([0.0, intercept[0]])
    weight = np.zeros((num_classes, dim), dtype=np.float32)
    bias = np.full(num_classes, ABSENT_CLASS_BIAS, dtype=np.float32)
    weight[classes] = coef
    bias[classes] = intercept
    return weight, bias


def _loss(logits: np.ndarray, labels: np.ndarray) -> float:
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-log_probs[np.arange(len(labels)), labels].mean())


def fit_probe(train_x: np.ndarray, train_y: Sequence[int], val_x: np.ndarray, val_y: Sequence[int],
              num_classes: int, sample_weight: np.ndarray | None = None,
              strengths: Sequence[float] = STRENGTHS) -> Probe:
    """Fit the probe for each strength (warm-started from the previous one) and keep the best on validation;
    without validation images, the default strength (C = 1) alone, its validation figures NaN."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    raw_x, y = np.asarray(train_x, dtype=np.float64), np.asarray(train_y)
    raw_vx, vy = np.asarray(val_x, dtype=np.float64), np.asarray(val_y)
    mean, scale = raw_x.mean(axis=0), raw_x.std(axis=0) + 1e-6
    x = (raw_x - mean) / scale
    classes = np.unique(y)
    if len(classes) < 2:
        raise ValueError("the linear probe needs training images of at least two classes")
    if len(vy) == 0:
        strengths = (1.0,)
    model = LogisticRegression(max_iter=MAX_ITERATIONS, warm_start=True)
    best: Probe | None = None
    for strength in sorted(strengths):
        model.set_params(C=strength)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # the next strength goes on from here
            model.fit(x, y, sample_weight=sample_weight)
        weight, bias = _as_linear(model, classes, num_classes, x.shape[1])
        weight, bias = (weight / scale).astype(np.float32), (bias - weight @ (mean / scale)).astype(np.float32)
        logits = raw_vx @ weight.T + bias
        found = Probe(weight, bias, strength, float((logits.argmax(axis=1) == vy).mean()) if len(vy) else np.nan,
                      _loss(logits, vy) if len(vy) else np.nan)
        if best is None or (found.val_accuracy, -found.val_loss) > (best.val_accuracy, -best.val_loss):
            best = found
    assert best is not None
    return best
