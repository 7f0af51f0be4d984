"""Calibration: expected calibration error, reliability bins and temperature scaling.

Temperature scaling (Guo et al., 2017) divides the logits by one number T fitted on the validation
split by minimising the negative log-likelihood. The predictions we hold are probabilities that may
already include a temperature T0; ``log(p)`` equals ``logits / T0`` up to a per-row constant that
softmax ignores, so fitting on ``log(p)`` and storing ``T0 * T`` is exactly temperature scaling of the
original logits.
"""

from __future__ import annotations

import math

import numpy as np

DEFAULT_BINS = 15
_LOG_FLOOR = 1e-30  # float32 softmax can underflow to 0; log(0) would be -inf
# NLL is convex in 1/T, so clamping the unconstrained optimum gives the optimum within these bounds.
# A model no better than chance drives T towards infinity (uniform output); the cap keeps it finite.
TEMPERATURE_RANGE = (0.05, 20.0)


def log_loss(probs: np.ndarray, labels: np.ndarray) -> float | None:
    """Mean negative log-likelihood of the true class; None for an empty set."""
    probs = np.asarray(probs, dtype=float)
    labels = np.asarray(labels, dtype=np.int64)
    if labels.size == 0:
        return None
    true_probs = probs[np.arange(labels.size), labels]
    return float(-np.mean(np.log(np.clip(true_probs, _LOG_FLOOR, 1.0))))


def reliability_bins(probs: np.ndarray, labels: np.ndarray, n_bins: int = DEFAULT_BINS) -> dict[str, list[float]]:
    """Equal-width confidence bins: lower/upper edges, count, mean confidence and accuracy of each.

    Empty bins are kept with count 0 and confidence/accuracy None so plots show the gaps.
    """
    probs = np.asarray(probs, dtype=float)
    labels = np.asarray(labels, dtype=np.int64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins: dict[str, list] = {"lower": edges[:-1].tolist(), "upper": edges[1:].tolist(), "count": [],
                             "confidence": [], "accuracy": []}
    if labels.size == 0:
        bins["count"] = [0] * n_bins
        bins["confidence"] = bins["accuracy"] = [None] * n_bins
        return bins
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    # Bin b holds confidences in (edges[b], edges[b+1]]; a confidence of exactly 0 goes to the first bin.
    index = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)
    for b in range(n_bins):
        members = index == b
        count = int(members.sum())
        bins["count"].append(count)
        bins["confidence"].append(float(confidence[members].mean()) if count else None)
        bins["accuracy"].append(float(correct[members].mean()) if count else None)
    return bins


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, n_bins: int = DEFAULT_BINS) -> float | None:
    """Sum over bins of |accuracy - confidence| weighted by the bin's share of samples."""
    bins = reliability_bins(probs, labels, n_bins)
    total = sum(bins["count"])
    if total == 0:
        return None
    return float(sum(c / total * abs(a - p) for c, a, p in zip(bins["count"], bins["accuracy"],
                                                                 bins["confidence"]) if c))


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Re-scale probabilities as if their logits were divided by ``temperature``."""
    logits = np.log(np.clip(np.asarray(probs, dtype=np.float64), _LOG_FLOOR, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    scaled = np.exp(logits)
    return scaled / scaled.sum(axis=1, keepdims=True)


def fit_temperature(probs: np.ndarray, labels: np.ndarray, max_iter: int = 100, stored: float = 1.0) -> float:
    """The temperature (relative to the one already in ``probs``) minimising NLL, fitted with LBFGS.

    ``stored`` is the temperature ``probs`` already include: the result times it (the temperature the
    model will store) lies in ``TEMPERATURE_RANGE``.
    """
    import torch

    labels = np.asarray(labels, dtype=np.int64)
    if labels.size == 0:
        raise ValueError("temperature scaling needs at least one labelled validation image")
    log_probs = torch.from_numpy(np.log(np.clip(np.asarray(probs, dtype=np.float64), _LOG_FLOOR, 1.0)))
    target = torch.from_numpy(labels)
    # Optimise log T so T stays positive without constraints.
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.1, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(log_probs / log_t.exp(), target)
        loss.backward()
        return loss

    optimizer.step(closure)
    temperature = float(log_t.exp().item())
    if math.isnan(temperature):
        raise ValueError("temperature scaling did not converge on these validation predictions")
    low, high = TEMPERATURE_RANGE
    return min(max(temperature, low / stored), high / stored)
