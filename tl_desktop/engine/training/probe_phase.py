"""The "probe" phase of the LP-FT recipe: the head becomes the linear probe fitted on the frozen features.

One pass over the head's training batches (cached pooled features of augmented views, or images through
the frozen part) and over the validation batches gives the features; :func:`fit_probe` fits the head to
convergence with its L2 strength chosen on validation. Under torchrun every rank gathers every rank's
features, so each fits the same probe as one process would.
"""

from __future__ import annotations

import functools
import io
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from tl_desktop.config import TrainConfig
from tl_desktop.engine.runtime.device import to_model_input
from tl_desktop.engine.training.batch_sources import BatchSource, BatchSources
from tl_desktop.engine.training.depth import DepthSuggestion, suggest_depth
from tl_desktop.engine.training.distributed import Ranks
from tl_desktop.engine.training.events import Event, Message, PhaseStarted
from tl_desktop.engine.training.probe import Probe, fit_probe
from tl_desktop.engine.training.recipe import Phase


@dataclass(frozen=True)
class ProbeOutcome:
    """The fitted probe, its training loss and accuracy (the run's criterion), and the depth suggestion."""

    probe: Probe
    train_loss: float
    train_accuracy: float
    suggestion: DepthSuggestion

    def message(self) -> str:
        p, s = self.probe, self.suggestion
        return (f"linear probe (the head fitted on the frozen features, L2 strength C={p.strength:g}): validation "
                f"accuracy {p.val_accuracy:.1%}. Suggested: train {s.trainable_blocks} blocks for {s.epochs} "
                f"epochs — {s.reason}.")


def _features(model: torch.nn.Module, source: BatchSource, device: torch.device, ranks: Ranks, stop
              ) -> tuple[np.ndarray, np.ndarray]:
    """Pooled features and labels of one pass over ``source``, from every rank."""
    chunks, labels = [], []
    model.eval()
    with torch.inference_mode():
        for inputs, batch_labels in source.batches:
            stop.raise_if_requested()
            if source.pooled:
                values = inputs
            else:
                values = model.pool(model.run_blocks(to_model_input(inputs, model, device), source.start_block))
            chunks.append(values.float().cpu().numpy())
            labels.append(batch_labels.numpy())
    x = np.concatenate(chunks) if chunks else np.zeros((0, model.feature_dim), np.float32)
    y = np.concatenate(labels) if labels else np.zeros(0, np.int64)
    if not ranks.distributed:
        return x, y
    buffer = io.BytesIO()
    np.savez(buffer, x=x, y=y)
    parts = [np.load(io.BytesIO(raw)) for raw in ranks.all_gather_bytes(buffer.getvalue())]
    return np.concatenate([p["x"] for p in parts]), np.concatenate([p["y"] for p in parts])


def _preferred_scale(logits: torch.Tensor, loss_of: Callable[[torch.Tensor], torch.Tensor]) -> float:
    """The factor on the probe's logits that the run's training loss prefers (its label smoothing punishes the
    probe's very confident logits, and fine-tuning from them would start with large, feature-distorting
    gradients); the answers stay the same, only the confidence changes."""
    from scipy.optimize import minimize_scalar

    found = minimize_scalar(lambda log_scale: float(loss_of(logits * math.exp(log_scale))), bounds=(-6.0, 2.0),
                            method="bounded")
    return math.exp(float(found.x))


def run_probe_phase(model: torch.nn.Module, phase: Phase, sources: BatchSources, criterion: torch.nn.Module,
                    num_blocks: int, device: torch.device, ranks: Ranks, stop,
                    emit: Callable[[Event], None]) -> ProbeOutcome:
    """Fit the probe on the phase's training features (strength chosen on the validation features), load it
    into the model's head, and say so (``PhaseStarted``, then a message with the depth suggestion)."""
    summary = model.set_trainable_blocks(0)
    train = sources.train_source(phase)  # computes the cached features, as a gradient phase's source does
    emit(PhaseStarted(phase.name, phase.first_epoch, phase.last_epoch, summary.trainable_params,
                      summary.total_params, phase.lr))
    x, y = _features(model, train, device, ranks, stop)
    vx, vy = _features(model, sources.val_source(phase), device, ranks, stop)
    num_classes = int(model.head[-1].out_features)
    weight = getattr(criterion, "weight", None)
    sample_weight = None if weight is None else weight.detach().cpu().numpy()[y]
    probe = fit_probe(x, y, vx, vy, num_classes, sample_weight=sample_weight)
    logits, target = torch.from_numpy(probe.logits(x)).float(), torch.from_numpy(y).long()
    loss_of = functools.partial(F.cross_entropy, target=target, label_smoothing=getattr(criterion, "label_smoothing", 0.0),
                                weight=None if weight is None else weight.detach().cpu().float())
    scale = _preferred_scale(logits, loss_of)
    probe = probe.scaled(scale)
    probe.load_into(model.head[-1])
    logits = logits * scale
    loss = float(loss_of(logits))
    accuracy = float((logits.argmax(1) == target).float().mean())
    outcome = ProbeOutcome(probe, loss, accuracy, suggest_depth(probe.val_accuracy, len(y), num_classes, num_blocks))
    emit(Message("info", outcome.message()))
    return outcome


def probe_kept(train: TrainConfig, best: tuple[int, float, float] | None, epochs_done: int) -> Message | None:
    """What to tell the user when an LP-FT run's best epoch is the probe's although later epochs ran."""
    if train.recipe != "lp-ft" or best is None or not best[0] == 1 < epochs_done:
        return None
    return Message("info", "training on from the linear probe did not beat it on validation, so the model kept is "
                           "the probe (epoch 1)")
