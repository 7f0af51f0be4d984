"""The training recipe's pieces: phases, optimiser, learning-rate schedule, loss, seeding.

Recipe "lp-ft" (Kumar et al., ICLR 2022; not yet the default, see benchmarks/accuracy.py): a one-epoch
"probe" phase fits the head to convergence as a linear probe on the frozen features (:mod:`probe`); then a "finetune" phase unfreezes
``trainable_blocks`` and trains them and the head at the low ``finetune_lr`` (with no blocks to unfreeze, a
"head" phase goes on from the probe at ``lr``). The probe's epoch competes for the best epoch like any other,
so a run never ends below the probe on validation. The default "classic" recipe (in the spirit of fastai's
``fine_tune``) trains the head by gradient descent for ``head_epochs`` instead of the probe. Each gradient
phase warms the learning rate up linearly, then decays it along a cosine.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from tl_desktop.config import TrainableBlocks, TrainConfig

IMBALANCE_THRESHOLD = 1.5
PROBE = "probe"  # the phase whose one epoch is the linear probe


@dataclass(frozen=True)
class Phase:
    """A stretch of epochs with one set of trainable blocks and one peak learning rate."""

    name: str
    first_epoch: int
    last_epoch: int
    trainable_blocks: TrainableBlocks
    lr: float

    @property
    def epochs(self) -> int:
        return self.last_epoch - self.first_epoch + 1


def plan_phases(train: TrainConfig, trainable_blocks: TrainableBlocks) -> list[Phase]:
    """Split ``train.epochs`` into the probe or head phase and, when blocks unfreeze, the finetune phase."""
    if train.recipe == "lp-ft":
        phases = [Phase(PROBE, 1, 1, 0, train.lr)]
        if train.epochs > 1:
            phases.append(Phase("finetune", 2, train.epochs, trainable_blocks, train.finetune_lr)
                          if trainable_blocks != 0 else Phase("head", 2, train.epochs, 0, train.lr))
        return phases
    if trainable_blocks == 0:
        return [Phase("head", 1, train.epochs, 0, train.lr)]
    phases = []
    if train.head_epochs > 0:
        phases.append(Phase("head", 1, train.head_epochs, 0, train.lr))
    if train.epochs > train.head_epochs:
        phases.append(Phase("finetune", train.head_epochs + 1, train.epochs, trainable_blocks, train.finetune_lr))
    return phases


def make_optimizer(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW over the trainable parameters; biases and normalisation weights get no weight decay."""
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            (decay if param.ndim >= 2 else no_decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=lr)


def warmup_cosine_factor(step: int, total_steps: int, warmup_steps: int) -> float:
    """Learning-rate multiplier: linear warm-up to 1 over ``warmup_steps``, then cosine decay to 0."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def make_scheduler(
    optimizer: torch.optim.Optimizer, steps_per_epoch: int, epochs: int, warmup_epochs: float
) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-step warm-up + cosine schedule for one phase (warm-up at most half the phase)."""
    total = max(1, steps_per_epoch * epochs)
    warmup = min(round(warmup_epochs * steps_per_epoch), total // 2)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: warmup_cosine_factor(step, total, warmup))


def imbalance_ratio(counts: Sequence[int]) -> float:
    """Largest class count divided by the smallest (inf when a class is empty)."""
    smallest = min(counts)
    return math.inf if smallest == 0 else max(counts) / smallest


def class_weights(counts: Sequence[int], mode: str) -> torch.Tensor | None:
    """Inverse-frequency loss weights (mean 1) when ``mode`` is "on", or "auto" and max/min >= 1.5."""
    if mode == "off" or (mode == "auto" and imbalance_ratio(counts) < IMBALANCE_THRESHOLD):
        return None
    counts_t = torch.tensor([max(1, c) for c in counts], dtype=torch.float32)
    weights = counts_t.sum() / (len(counts) * counts_t)
    return weights / weights.mean()


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and PyTorch; return a seeded generator for the training DataLoader."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


def seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: derive NumPy and ``random`` seeds from the worker's torch seed."""
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)
