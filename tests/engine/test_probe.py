"""The linear probe: scikit-learn's logistic regression as the model's head, its strength chosen on validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from torch import nn

from tl_desktop.engine.training.probe import ABSENT_CLASS_BIAS, fit_probe


def _blobs(n_per_class: int, classes: int, dim: int = 16, spread: float = 1.0, seed: int = 0):
    centres = np.random.default_rng(99).normal(0, 3, size=(classes, dim))  # the same classes in every sample
    rng = np.random.default_rng(seed)
    x = np.concatenate([centres[c] + spread * rng.normal(size=(n_per_class, dim)) for c in range(classes)])
    y = np.repeat(np.arange(classes), n_per_class)
    return x.astype(np.float32), y


def test_the_probe_as_a_head_answers_like_scikit_learn():
    x, y = _blobs(30, 4, spread=2.5)
    vx, vy = _blobs(15, 4, spread=2.5, seed=1)
    probe = fit_probe(x, y, vx, vy, num_classes=4)
    reference = LogisticRegression(C=probe.strength, max_iter=3000).fit(x, y)
    head = nn.Linear(16, 4)
    probe.load_into(head)
    with torch.no_grad():
        answers = head(torch.from_numpy(vx)).argmax(1).numpy()
    assert (answers == reference.predict(vx)).mean() >= 0.98
    assert probe.val_accuracy == pytest.approx((answers == vy).mean())


def test_the_strength_is_chosen_on_validation():
    x, y = _blobs(40, 3, spread=4.0)
    vx, vy = _blobs(40, 3, spread=4.0, seed=2)
    chosen = fit_probe(x, y, vx, vy, num_classes=3)
    for strength in (1e-3, 1.0, 100.0):
        single = fit_probe(x, y, vx, vy, num_classes=3, strengths=[strength])
        assert chosen.val_accuracy >= single.val_accuracy
        if chosen.val_accuracy == single.val_accuracy:  # then the lower loss (warm starts differ by ~1e-4)
            assert chosen.val_loss <= single.val_loss + 1e-3


def test_two_classes_become_a_two_way_softmax():
    x, y = _blobs(25, 2)
    probe = fit_probe(x, y, x, y, num_classes=2)
    assert probe.weight.shape == (2, 16) and probe.bias.shape == (2,)
    reference = LogisticRegression(C=probe.strength, max_iter=3000).fit(x, y)
    assert (probe.logits(x).argmax(1) == reference.predict(x)).all()


def test_a_class_without_training_images_is_never_the_answer():
    x, y = _blobs(20, 3)
    keep = y != 1
    probe = fit_probe(x[keep], np.where(y[keep] == 2, 2, 0), x, y, num_classes=3)
    assert probe.bias[1] == ABSENT_CLASS_BIAS and not probe.weight[1].any()
    assert 1 not in probe.logits(x).argmax(1)


def test_without_validation_images_the_default_strength_is_used():
    x, y = _blobs(20, 2)
    probe = fit_probe(x, y, x[:0], y[:0], num_classes=2)
    assert probe.strength == 1.0 and np.isnan(probe.val_accuracy)


def test_one_class_is_refused():
    x, y = _blobs(10, 1)
    with pytest.raises(ValueError, match="two classes"):
        fit_probe(x, y, x, y, num_classes=2)
